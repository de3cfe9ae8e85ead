#!/usr/bin/env bash
# The model benchmark (benchmarks/model_bench.py) on a lent GPU machine, as one prepared run.
# Prepare here first with benchmarks/gpu_prepare.sh, then run this there from the repository
# root, carrying .gpu and .cache/corpus. va2jax on the CPU is not timed there (the CPU table comes
# from `make bench-models` here); the native OSDI harness runs on one CPU core of that machine.
# Results: $OUT/gpu_bench.json, $OUT/bench.log, $OUT/env.txt.
set -u
OUT=${OUT:-/tmp/gpu-bench-out}
mkdir -p "$OUT"
PY=${PY:-python3}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  echo "cpus: $(nproc)"; gcc --version | head -1; "$PY" --version
} 2>&1 | tee "$OUT/env.txt"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 VA2JAX_CACHE=/tmp/va2jax-cache
export VA2JAX_PARALLEL_COMPILE=${VA2JAX_PARALLEL_COMPILE:-8}
"$PY" -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | tee -a "$OUT/env.txt"
timeout "${BENCH_TIMEOUT:-480}" "$PY" benchmarks/model_bench.py --models "${MODELS:-psp103,bsim4,diode}" \
  --batches "${BATCHES:-1,1024,16384,262144}" --cpu-max-batch -1 --osdi-dir .gpu/osdi \
  --reps 3 --min-time 0.2 --json "$OUT/gpu_bench.json" 2>&1 | tee "$OUT/bench.log"
