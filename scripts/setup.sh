#!/usr/bin/env bash
# Sets up crackseg on Debian/Ubuntu: installs what is missing of libtorch (CPU), Python's torch,
# CMake and g++ (through apt, as root or with sudo), plus the reference libraries the tests use,
# then `npm ci`, which builds the native addon.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# OpenBLAS by name: libtorch only recommends it, and without recommends apt satisfies its BLAS
# dependency with the reference BLAS, 30x slower at matrix products.
packages=(libtorch-dev python3-torch libopenblas0-pthread cmake g++ ninja-build fonts-dejavu-core)
# The tests compare against OpenCV and scikit-image.
[[ ${CRACKSEG_TEST_DEPS:-1} == 1 ]] && packages+=(python3-opencv python3-skimage clang-format)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  echo "setup: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
npm ci --no-audit --no-fund
