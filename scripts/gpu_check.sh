#!/usr/bin/env bash
# The GPU checks in one go, for a machine with a CUDA GPU and no network or nox
# (python3 there already has torch, jax with CUDA, triton, pandas, pytest and
# pytest-benchmark). Writes everything under ${OUT:-results/gpu-run}:
#   backends.txt   what can run there
#   pytest.txt     the GPU-marked tests (device events, TF32 mode, bf16/fp16 softmax,
#                  memory statistics, torch and JAX sharing the GPU, Triton on CUDA)
#   gpu/           the GPU preset, float32 IEEE and TF32, with CUDA-event timing
#   fast/          the fast forms at 8x4096x1024 (issue 8's GPU aim)
# Usage: OUT=/somewhere bash scripts/gpu_check.sh   (about 5-8 minutes on an H100)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-results/gpu-run}
mkdir -p "$out"
python3 -m suite backends | tee "$out/backends.txt"
timeout 240 python3 -m pytest -m gpu tests/backends/test_gpu.py tests/test_ceilings.py tests/backends/test_triton.py \
    -q -rs -p no:cacheprovider 2>&1 | tee "$out/pytest.txt"
timeout 300 python3 -m suite run --preset gpu --backends torch,torch-compile,jax,triton \
    --forms matrix,softmax,cumsum,chunked --precisions ieee,tf32 --device-events \
    --budget 0.3 --timeout 60 --quiet --out "$out/gpu"
timeout 120 python3 -m suite run --sizes 8x4096x1024 --backends torch,torch-compile,jax,triton \
    --forms cumsum,chunked --device-events --quiet --out "$out/fast"
echo "done: $out"
