#!/usr/bin/env bash
# Installs CUDA 13.0's nvcc (and the headers it needs) from the Python package
# index into .toolchain/cuda, a git-ignored folder of this checkout, so that
# build.rs can compile the kernels on machines without a CUDA toolkit (CI).
# The versions are pinned: unpinned, pip pulls nvvm 13.5, whose PTX
# (.version 9.5) the 13.0 ptxas and a 580 driver reject (see
# docs/platform-facts.md, "Toolchain and driver").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="${RINGBRIDGE_TOOLCHAIN:-$root/.toolchain/cuda}"
nvcc="$dest/nvidia/cu13/bin/nvcc"
if [ -x "$nvcc" ] && "$nvcc" --version 2>/dev/null | grep -q 'release 13.0'; then
    echo "install-nvcc: already installed: $nvcc"
    exit 0
fi
mkdir -p "$dest"
python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$dest" --upgrade \
    nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
# The wheels ship without the execute bit on some tools.
chmod +x "$dest"/nvidia/cu13/bin/* "$dest"/nvidia/cu13/nvvm/bin/* 2>/dev/null || true
"$nvcc" --version
echo "install-nvcc: installed: $nvcc"
