#!/usr/bin/env bash
# One short run on any machine with a CUDA GPU (< 5 minutes): build, run the operator tests on the
# GPU (Triton compiled for real, not interpreted), then the standard benchmarks on CUDA.
# Results land in $OUT (default ./results): bench_cuda.json, bench_cuda.png, tests.log, bench.log.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-results}"
mkdir -p "$OUT"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
pip install -e ".[dev]" --no-build-isolation -q 2>&1 | tail -2 || python setup.py build_ext --inplace
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
# The op tests hold both backends; with CUDA present conftest leaves TRITON_INTERPRET unset.
timeout 150 python -m pytest -q -x tests/ops 2>&1 | tee "$OUT/tests.log" | tail -15
timeout 150 recengine bench --device cuda --repeat 10 --json "$OUT/bench_cuda.json" --plot "$OUT/bench_cuda.png" \
  2>&1 | tee "$OUT/bench.log"
