#!/usr/bin/env bash
# The test suite on Debian 13 (torch 2.6) from any Debian machine, as root: a minimal Debian 13 in
# a chroot (debootstrap, kept for the next run), this checkout's files copied in, then
# scripts/setup.sh and `npm test` there. Needs deb.debian.org and the npm registry.
#   bash scripts/debian13-check.sh [--cuda] [--prebuild] [CHROOT_DIR]
#   (default /var/tmp/crackseg-debian13[-cuda]); --prebuild: then `npm run prebuild` there, and the
#   tagged addon copied into this checkout's prebuilds/ (the release workflow's CUDA prebuild).
# --cuda: Debian's CUDA libtorch (contrib, with nvidia-cuda-toolkit from non-free) in place of the
# CPU one, so the addon's CUDA flavour is compiled and its suite run on this machine's CPU. cuDNN
# is not in Debian (nvidia-cudnn downloads it from NVIDIA; declined here): a stub library with
# cuDNN's symbol names, each returning an error status, lets libtorch load; CPU runs never call it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cuda=0 flavour=cpu suffix= prebuild=0
while [[ ${1:-} == --* ]]; do
  case $1 in
    --cuda) cuda=1 flavour=cuda suffix=-cuda ;;
    --prebuild) prebuild=1 ;;
    *) echo "debian13-check: unknown option $1" >&2 && exit 2 ;;
  esac
  shift
done
root=${1:-/var/tmp/crackseg-debian13$suffix}
((EUID == 0)) || {
  echo "debian13-check: run as root (debootstrap, chroot and mounts need it)" >&2
  exit 1
}

command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
if [[ ! -x $root/usr/bin/npm ]]; then
  # npm's many small packages may fail to configure inside debootstrap; apt finishes them below.
  debootstrap --variant=minbase --include=ca-certificates,nodejs,npm trixie "$root" \
    http://deb.debian.org/debian || true
fi

mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
trap 'umount "$root/dev" "$root/proc"' EXIT
cp /etc/resolv.conf "$root/etc/resolv.conf"
# A proxy's certificate authority, where the host names one.
ca=${NODE_EXTRA_CA_CERTS:-}
[[ -n $ca && -f $ca ]] && cp "$ca" "$root/etc/ssl/certs/host-extra-ca.pem"
in_root() {
  chroot "$root" env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin \
    ${ca:+NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-extra-ca.pem} \
    ${ca:+npm_config_cafile=/etc/ssl/certs/host-extra-ca.pem} bash -c "$1"
}
in_root 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -f >/dev/null'
if ((cuda)); then
  in_root 'set -e
    echo "deb http://deb.debian.org/debian trixie main contrib non-free" >/etc/apt/sources.list
    echo "nvidia-cudnn nvidia-cudnn/question select I Decline" | debconf-set-selections
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libtorch-cuda-dev python3-torch-cuda nvidia-cuda-toolkit gcc binutils >/dev/null
    # No NVIDIA driver here: OpenGL (OpenCV loads it) from Mesa, not from the absent driver.
    update-alternatives --set glx /usr/lib/mesa-diverted >/dev/null
    lib=/usr/lib/$(gcc -print-multiarch)
    for so in "$lib"/libtorch*.so.* "$lib"/libc10*.so.*; do nm -D --undefined-only "$so"; done |
      sed -n "s/^ *U \(cudnn[A-Za-z0-9_]*\)@libcudnn\.so\.9$/int \1(void) { return 1001; }/p" |
      sort -u >/tmp/cudnn-stub.c
    echo "libcudnn.so.9 { global: *; };" >/tmp/cudnn-stub.map
    gcc -shared -fPIC -Wl,-soname,libcudnn.so.9 -Wl,--version-script=/tmp/cudnn-stub.map \
      -o /usr/local/lib/libcudnn.so.9 /tmp/cudnn-stub.c
    ldconfig'
fi

rm -rf "$root/crackseg"
mkdir -p "$root/crackseg"
git -C "$here" ls-files -z --cached --others --exclude-standard |
  (cd "$here" && xargs -0 tar cf -) | tar xf - -C "$root/crackseg"
in_root 'cd /crackseg && bash scripts/setup.sh'
linked=$(in_root 'cd /crackseg && node -p "require(\"./build/Release/crackseg.node\").runtimeInfo().flavour"')
echo "debian13-check: the addon links libtorch's $linked flavour (wanted: $flavour)"
[[ $linked == "$flavour" ]]
in_root 'cd /crackseg && npm test'
if ((prebuild)); then
  in_root 'cd /crackseg && npm run prebuild'
  mkdir -p "$here/prebuilds"
  cp -r "$root/crackseg/prebuilds/." "$here/prebuilds/"
fi
