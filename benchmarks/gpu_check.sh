#!/usr/bin/env bash
# The one GPU check of issue #7, run from the repository root on a CUDA machine (< 7 min on an H200):
#   (a) exactness of every GPU fast path against the plain loop, float64 and float32 (PASS/FAIL);
#   (b) the full training-step / evaluation benchmark (JSON + table);
#   (c) aggregate throughput of 1, 2, 4 concurrent training runs on the one GPU;
#   (d) ptb-small-scrn-nd-wt at the paper profile on PTB, capped in wall-clock time.
# Needs python3 with torch (CUDA), numpy, pyyaml, tqdm; data/prepared/ptb for (c) and (d).
# Writes 8 files to $OUT (default: benchmarks/results/gpu-check). Each step has its own
# timeout, and a failing step does not stop the next.
# DEVICE=cpu bash benchmarks/gpu_check.sh is a dry run of the same steps with tiny budgets.
. benchmarks/check_prologue.sh gpu-check
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
DEVICE=${DEVICE:-cuda}
if [ "$DEVICE" = cpu ]; then  # dry run: the same commands, sized for a CPU
  EXACT_ARGS=(--models ptb-small-scrn-nd-wt); BENCH_ARGS=(--quick --sizes small --rounds 1 --steps 1)
  MULTI_ARGS=(--quick --parallel 1 2); TRAIN_CAP=60
else
  EXACT_ARGS=(); BENCH_ARGS=(); MULTI_ARGS=(--parallel 1 2 4); TRAIN_CAP=${TRAIN_CAP:-100}
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "gpu", torch.cuda.is_available() and torch.cuda.get_device_name())'

# (a) exactness (~30 s)
timeout 75 "$PY" -m benchmarks.gpu_exactness --device "$DEVICE" "${EXACT_ARGS[@]}" 2>&1 | tee "$OUT/exactness.txt" || status=1

# (b) benchmark: SCRN small/medium (loop, scan, tanh-rnn, triton) vs nn.LSTM 2x200 / 2x650 (~1 min)
timeout 110 "$PY" -m benchmarks.train_step --device "$DEVICE" "${BENCH_ARGS[@]}" --out "$OUT" 2>&1 | tee "$OUT/train-step.txt" || status=1

# (c) 1, 2, 4 concurrent runs of one PTB epoch each (~1.5 min)
timeout 110 "$PY" -m benchmarks.multi_run --device "$DEVICE" "${MULTI_ARGS[@]}" --out "$OUT" 2>&1 | tee "$OUT/multi-run.txt" || status=1

# (d) a real run at the paper profile, capped; epochs.csv is written after every epoch
timeout "$TRAIN_CAP" "$PY" -m stages.train --run ptb-small-scrn-nd-wt --profile paper --device "$DEVICE" --no-progress \
  --results "$SCRATCH/results" --checkpoints "$SCRATCH/checkpoints" 2>&1 | tee "$OUT/train-paper-log.txt"
run_dir="$SCRATCH/results/paper/ptb-small-scrn-nd-wt"
cp "$run_dir/epochs.csv" "$OUT/train-paper-epochs.csv" 2>/dev/null || echo "no epochs.csv (no epoch finished)"
cp "$run_dir/metrics.json" "$OUT/train-paper-metrics.json" 2>/dev/null || echo "no metrics.json (run capped before its last epoch)"

ls -la "$OUT"
exit $status
