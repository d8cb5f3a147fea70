#!/usr/bin/env bash
# One short run on a machine with a CUDA GPU (about 5 minutes): build, run the operator tests on the GPU
# (Triton compiled for real, not interpreted), then the standard benchmarks on CUDA.
# Works offline: nothing is fetched (the ops and benchmarks need torch, triton, numpy, tqdm, matplotlib).
# Results land in $OUT (default ./results): gpu.txt, build.log, tests.log, bench_cuda/bench.json, bench_cuda/bench.png,
# bench.log. Each stage has its own time limit and a failed stage does not stop the next one.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-results}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
$PY -c "import torch, triton; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())" | tee "$OUT/gpu.txt" || exit 1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv | tee -a "$OUT/gpu.txt"

# Build in place (offline: no build isolation, no dependency resolution).
t0=$SECONDS
RECENGINE_BUILD_JOBS=$(nproc) $PY setup.py -q build_ext --inplace >"$OUT/build.log" 2>&1 \
  || { tail -30 "$OUT/build.log"; exit 1; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
echo "build: $((SECONDS - t0)) s"

# The op tests (public ops, on CUDA through Triton), the Triton launcher tests, and the sync-free steps (their
# CUDA-graph captures against the eager steps); with CUDA present conftest leaves TRITON_INTERPRET unset.
# The bench then times W1 forward/train (train: the captured step beside the eager module step), W2 top-k,
# GEMM bound and cross-entropy fwd+bwd with its extra memory, and W4 (the captured DQNStep beside the eager
# op-by-op step and the plain-PyTorch reference), each against its same-run references.
t0=$SECONDS
TIMEOUT_OPT=$($PY -c "import pytest_timeout" 2>/dev/null && echo "--timeout 90")
timeout "${TEST_LIMIT:-200}" $PY -m pytest -q -p no:cacheprovider $TIMEOUT_OPT tests/ops tests/kernels \
  tests/train/test_dqn_step.py tests/train/test_embedding_step.py \
  >"$OUT/tests.log" 2>&1
echo "tests: rc $? in $((SECONDS - t0)) s"; tail -25 "$OUT/tests.log"

t0=$SECONDS
timeout "${BENCH_LIMIT:-200}" $PY -m recengine.cli bench --device cuda --repeat "${REPEAT:-10}" \
  --out "$OUT/bench_cuda" --overwrite --plot >"$OUT/bench.log" 2>&1
echo "bench: rc $? in $((SECONDS - t0)) s"; cat "$OUT/bench.log"
