#!/usr/bin/env bash
# Sets up crackseg on Debian/Ubuntu: installs what is missing of libtorch (CPU), Python's torch,
# CMake and g++ (through apt, as root or with sudo), plus the reference libraries the tests use,
# then `npm ci`, which builds the native addon. A CUDA libtorch from Debian's contrib
# (libtorch-cuda-dev, python3-torch-cuda) is kept: the CPU packages would replace it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

torch_packages=(libtorch-dev python3-torch)
installed libtorch-cuda-dev && torch_packages=(libtorch-cuda-dev python3-torch-cuda)
packages=("${torch_packages[@]}" cmake g++ ninja-build fonts-dejavu-core)
# OpenBLAS by name: libtorch only recommends it, and without recommends apt satisfies its BLAS
# dependency with the reference BLAS, far slower at matrix products. Its OpenMP build, as torch
# runs on OpenMP: the pthread build starts threads inside torch's (docs/benchmarks.md has both
# measurements); a machine that has that build keeps it (see the note below).
installed libopenblas0-pthread || packages+=(libopenblas0-openmp)
# The tests compare against OpenCV and scikit-image.
[[ ${CRACKSEG_TEST_DEPS:-1} == 1 ]] && packages+=(python3-opencv python3-skimage clang-format)

missing=()
for package in "${packages[@]}"; do
  installed "$package" || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  echo "setup: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# torch 2's CPU attention calls BLAS inside its own threads (1.13 has no such kernel).
if dpkg --compare-versions "$(dpkg-query -W -f='${Version}' "${torch_packages[0]}")" ge 2 &&
  [[ $(readlink -f "/usr/lib/$(gcc -print-multiarch)/libblas.so.3") == *openblas-pthread* ]]; then
  echo "setup: note: BLAS is OpenBLAS's pthread build; torch's CPU attention runs faster on" \
    "its OpenMP build (libopenblas0-openmp, then update-alternatives --config for libblas.so.3," \
    "liblapack.so.3 and libopenblas.so.0)"
fi
npm ci --no-audit --no-fund
