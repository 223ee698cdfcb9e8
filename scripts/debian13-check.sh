#!/usr/bin/env bash
# The test suite on Debian 13 (torch 2.6) from any Debian machine, as root: a minimal Debian 13 in
# a chroot (debootstrap, kept for the next run), this checkout's files copied in, then
# scripts/setup.sh and `npm test` there. Needs deb.debian.org and the npm registry.
#   bash scripts/debian13-check.sh [CHROOT_DIR]      (default /var/tmp/crackseg-debian13)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=${1:-/var/tmp/crackseg-debian13}
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
  chroot "$root" env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin \
    ${ca:+NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-extra-ca.pem} \
    ${ca:+npm_config_cafile=/etc/ssl/certs/host-extra-ca.pem} bash -c "$1"
}
in_root 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -f >/dev/null'

rm -rf "$root/crackseg"
mkdir -p "$root/crackseg"
git -C "$here" ls-files -z --cached --others --exclude-standard |
  (cd "$here" && xargs -0 tar cf -) | tar xf - -C "$root/crackseg"
in_root 'cd /crackseg && bash scripts/setup.sh && npm test'
