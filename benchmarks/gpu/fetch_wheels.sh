#!/usr/bin/env bash
# Run HERE (a CPU machine with pip access), before a session's GPU calls: the wheels that the lent
# GPU machine's image lacks (it has Python 3.12, torch, triton, transformers, pytest, hypothesis,
# scipy; it reaches no package registry), saved to .whl/ (git-ignored) for
# the device call's `carry`. --dali also saves NVIDIA DALI and its pure-Python needs, split into
# .whl-dali/NN parts of 60 MiB (one call carries at most 64 MiB; see benchmarks/gpu/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

download() {  # download DEST SPEC...: cp312 manylinux wheels, no dependencies
  local dest=$1; shift
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$dest" "$@"
}

rm -rf .whl && download .whl av==18.1.0 megatron-core==0.16.1
du -sh .whl

if [ "${1:-}" = "--dali" ]; then
  tmp=$(mktemp -d)
  download "$tmp" nvidia-dali-cuda130==2.4.0 "astunparse<=1.6.3" "gast<=0.7.0" optree nvtx makefun "libcst~=1.8"
  rm -rf .whl-dali && mkdir -p .whl-dali
  (cd "$tmp" && tar cf - ./*.whl) | split -b 60M -d - .whl-dali/part
  rm -rf "$tmp"
  ls -la .whl-dali
fi
