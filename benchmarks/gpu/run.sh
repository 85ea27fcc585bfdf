#!/usr/bin/env bash
# Run ON the lent GPU machine (device tool), from the repository root, with `.whl` carried:
#   bash benchmarks/gpu/run.sh STAGE...   STAGE: setup | doctor | tests | kernels | sanitizer | megatron | fsdp | bench | decode | step
# Installs the carried wheels, builds geovr._ext with its CUDA part (once per warm machine), then
# runs each stage with its log under $OUT (what the device tool brings back). COMMIT=<hash> names the
# commit in env.txt where the copy has no .git. See README.md here.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=python3

setup() {
  if [ -d .whl ] && [ ! -f /tmp/site/.geovr-done ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      && touch /tmp/site/.geovr-done
  fi
  if [ -d /tmp/dali-parts ] && ls /tmp/dali-parts/part* >/dev/null 2>&1 && [ ! -f /tmp/site/.dali-done ]; then
    mkdir -p /tmp/dali && cat /tmp/dali-parts/part* | tar xf - -C /tmp/dali \
      && $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/dali/*.whl \
      && touch /tmp/site/.dali-done
  fi
  if ! $PY -c "from geovr import _ext; assert _ext.with_cuda" 2>/dev/null; then
    FORCE_CUDA=1 MAX_JOBS=16 $PY setup.py -q build_ext --inplace > "$OUT/build.log" 2>&1 || {
      tail -40 "$OUT/build.log"; exit 1; }
  fi
  $PY - <<'PY' | tee "$OUT/env.txt"
import os, subprocess, torch, triton, transformers
from geovr import _ext
from geovr.data.decode import available_backends
commit = os.environ.get("COMMIT") or subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                                    text=True).stdout.strip() or "unknown commit"
print(commit,
      subprocess.run(["date", "-u", "+%Y-%m-%d"], capture_output=True, text=True).stdout.strip())
dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
print(f"{dev} | torch {torch.__version__} | triton {triton.__version__} | "
      f"transformers {transformers.__version__} | geovr._ext CUDA: {_ext.with_cuda} | "
      f"decoders: {', '.join(available_backends())}")
PY
}

stage() {  # stage NAME TIMEOUT_S CMD...: run with a log in $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  echo "== $name: $*" | tee "$OUT/$name.log"
  timeout "$limit" "$@" 2>&1 | tee -a "$OUT/$name.log"
  echo "== $name: exit ${PIPESTATUS[0]}" | tee -a "$OUT/$name.log"
}

setup || exit 1
for s in "$@"; do
  case $s in
    doctor) GEOVR_DOCTOR_DIR=$OUT/verdicts stage doctor 540 $PY -m geovr.doctor ;;
    sanitizer) # every kernel test once under compute-sanitizer, no caching allocator (it hides overruns)
      SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
      if [ -z "$SAN" ]; then echo "compute-sanitizer not found" | tee "$OUT/sanitizer.log"; else
        PYTORCH_NO_CUDA_MEMORY_CACHING=1 stage sanitizer 560 "$SAN" --tool memcheck --error-exitcode 9 \
          $PY -m pytest -q -x tests/kernels -k "not aot"; fi ;;
    tests) stage gpu_tests 420 $PY -m pytest -q -rs -m gpu tests --ignore=tests/parallel/test_megatron_gpu.py --ignore=tests/parallel/test_fsdp_gpu.py ;;
    kernels) stage kernels 420 $PY -m pytest -q -rs tests/kernels tests/ext tests/losses ;;
    megatron) stage megatron 500 $PY -m pytest -q -rs tests/parallel/test_megatron_gpu.py ;;
    fsdp) stage fsdp 400 $PY -m pytest -q -rs tests/parallel/test_fsdp_gpu.py ;;
    bench) stage bench_fp32 280 $PY benchmarks/loss_kernels.py
           stage bench_bf16 280 $PY benchmarks/loss_kernels.py --shapes release --dtype bf16 ;;
    decode) stage decode 400 $PY benchmarks/decode.py ;;
    step) stage step 540 $PY benchmarks/train_step.py --time --models 2b --frames 32 --steps 3 ;;
    setup) ;;
    *) echo "unknown stage $s (setup | doctor | tests | kernels | sanitizer | megatron | fsdp | bench | decode | step)"; exit 2 ;;
  esac
done
