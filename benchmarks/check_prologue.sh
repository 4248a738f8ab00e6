# Sourced by the GPU check scripts (gpu_check.sh, gpu_graph_check.sh, gpu_triton_check.sh), run from
# the repository root: `. benchmarks/check_prologue.sh <default $OUT folder under benchmarks/results>`.
# Each step's command is traced and a failing step does not stop the next: it sets status=1.
set -uo pipefail
set -x
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
OUT=${OUT:-benchmarks/results/$1}
mkdir -p "$OUT"
status=0
