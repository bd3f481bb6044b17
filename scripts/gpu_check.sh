#!/usr/bin/env bash
# The GPU checks in one go, for a machine with a CUDA GPU and no network or nox
# (python3 there already has torch, jax with CUDA, triton, pandas, pytest and
# pytest-benchmark). Writes everything under ${OUT:-results/gpu-run}:
#   backends.txt   what can run there
#   pytest.txt     every GPU-marked test under tests/ (device events, TF32 mode, bf16/fp16 softmax,
#                  memory statistics, torch and JAX sharing the GPU, Triton on CUDA)
#   gpu/           the GPU preset, float32 IEEE and TF32, with CUDA-event timing
#   fast/          the fast forms at 8x4096x1024 (issue 8's GPU aim)
#   attention.txt  every attention kernel against the reference (check) in float32,
#                  float16 and bfloat16: flash and cuDNN need half precision
#   attention/     the attention kernels against chunked, cumsum and the Triton scan, T 1024..16384
#                  (issue 16: where the O(T^2) fused kernels lose to the O(T) scans on the GPU)
# Usage: OUT=/somewhere bash scripts/gpu_check.sh   (its duration on a GPU is not measured yet)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-results/gpu-run}
mkdir -p "$out"
python3 -m suite backends | tee "$out/backends.txt"
# Every gpu-marked test wherever it lives (a list of files once left out tests/test_backends.py's TF32 check).
timeout 240 python3 -m pytest -m gpu tests -q -rs -p no:cacheprovider 2>&1 | tee "$out/pytest.txt"
timeout 300 python3 -m suite run --preset gpu --backends torch,torch-compile,jax,triton \
    --forms matrix,softmax,cumsum,chunked --precisions ieee,tf32 --device-events \
    --budget 0.3 --timeout 60 --quiet --out "$out/gpu"
timeout 120 python3 -m suite run --sizes 8x4096x1024 --backends torch,torch-compile,jax,triton \
    --forms cumsum,chunked --device-events --quiet --out "$out/fast"
timeout 240 python3 -m suite check --sizes 2x1x64,2x97x64,1x4097x64,2x97x3 --backends torch,torch-compile,jax \
    --forms attention --attention-kernels auto,flash,efficient,cudnn,math,xla --dtypes float32,float16,bfloat16 \
    --device gpu --quiet 2>&1 | tee "$out/attention.txt"
timeout 420 python3 -m suite run --sizes 8x1024x64,8x2048x64,8x4096x64,8x8192x64,8x16384x64 \
    --backends torch,torch-compile,jax,triton --forms attention,cumsum,chunked \
    --attention-kernels auto,flash,efficient,cudnn,math,xla --dtypes bfloat16,float32 --device-events \
    --budget 0.3 --timeout 60 --quiet --out "$out/attention"
echo "done: $out"
