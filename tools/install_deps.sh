#!/usr/bin/env bash
# Everything fastar needs on a fresh Debian 12 / Ubuntu machine, idempotent (a second run changes
# nothing): the compilers and libraries of the build (Debian packages), the Python package's build
# requirements and the test tools (PyPI), and, when the CUDA toolkit is installed, cuDNN for the GPU
# video decoders. The README's two quick-start commands and CI (.ci/run) begin with it.
#   bash tools/install_deps.sh            # as root, or a user with sudo
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

packages=(build-essential cmake ninja-build pkg-config git python3 python3-pip python3-numpy
  libgtest-dev nlohmann-json3-dev libopenblas-openmp-dev libpng-dev libsentencepiece-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
  libboost-dev libturbojpeg0-dev chromium chromium-driver)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install_deps: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# PyPI: the Python package's build requirements (Debian 12 packages no nanobind) and the test tools.
# PIP_BREAK_SYSTEM_PACKAGES: should python3 be Debian's own (PEP 668), install into it all the same.
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q scikit-build-core nanobind pytest numpy selenium==4.51.0

# The CUDA toolkit, when installed: cuDNN (PyPI) for the GPU video decoders; CMake finds it there.
if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
  python3 -c "import nvidia.cudnn" 2>/dev/null || python3 -m pip install -q nvidia-cudnn-cu13
fi
echo "install_deps: ready"
