#!/usr/bin/env bash
# The reproduction ledger on a lent GPU: the cells a 2-core CPU cannot reach (PTB medium first, then
# WikiText-2), several runs packed onto the one GPU, sized to the device time left.
#
# Run from the repository root on the GPU machine, with data/prepared carried there:
#   SCRN_GIT_REV=<commit of this tree> BUDGET=8m bash scripts/ledger-gpu.sh
# A lent machine keeps nothing after the call, so runs start only if they can finish in BUDGET
# (stages.ledger --finish-only). What comes back, under $OUT: ledger.log (the ledger's own lines),
# ledger-results.tar.gz (results/paper/<run>/{metrics.json,epochs.csv,train.log}, weights left out)
# and gpu.txt (the GPU and library versions). Unpack the archive at the repository root and commit.
#
# Settings (environment): BUDGET (default 8m), PARALLEL (runs at once, default 4), ONLY (runs or
# ledger groups, default "ptb-medium wt2"), LR_FLOOR (an LR floor that a paired check has validated;
# default none), DEVICE (default cuda; cpu for a dry run here), PYTHON (default python3), PARAMS,
# PREPARED (default data/prepared).
set -uo pipefail
: "${SCRN_GIT_REV:?set SCRN_GIT_REV to the commit this working tree holds (the .git of a copied tree may be stale)}"
export SCRN_GIT_REV PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
OUT=${OUT:-ledger-gpu-out}
BUDGET=${BUDGET:-8m}
PARALLEL=${PARALLEL:-4}
ONLY=${ONLY:-ptb-medium wt2}
DEVICE=${DEVICE:-cuda}
PARAMS=${PARAMS:-params.yaml}
PREPARED=${PREPARED:-data/prepared}
mkdir -p "$OUT"
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
} > "$OUT/gpu.txt"

floor=()
[ -n "${LR_FLOOR:-}" ] && floor=(--lr-floor "$LR_FLOOR")
# shellcheck disable=SC2086  # ONLY is a list of words
"$PY" -m stages.ledger --device "$DEVICE" --parallel "$PARALLEL" --budget "$BUDGET" --finish-only \
  --params "$PARAMS" --prepared "$PREPARED" --only $ONLY --results "$SCRATCH/results" --checkpoints "$SCRATCH/checkpoints" \
  "${floor[@]}" 2>&1 | tee "$OUT/ledger.log"
status=${PIPESTATUS[0]}

if [ -d "$SCRATCH/results/paper" ]; then
  tar -czf "$OUT/ledger-results.tar.gz" -C "$SCRATCH" --exclude='*/model' results/paper
fi
exit "$status"
