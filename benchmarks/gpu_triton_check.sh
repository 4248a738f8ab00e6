#!/usr/bin/env bash
# The Triton check of issue #7 (< 8 min on an H100/H200), from the repository root on a CUDA machine
# with Triton (it comes with CUDA builds of torch):
#   (a) exactness of recurrence_impl=triton against the plain loop, float32 (TF32 off) and float64:
#       the recurrence (masks, widths 240/750/100), the small and medium models, and the training
#       step captured as a CUDA graph with it; a kernel that hangs at its grid barrier stops here;
#   (b) the recurrence alone, forward + backward, per kernel and Triton launch shape, eager and graphed;
#   (c) the training-step benchmark: nn.LSTM eager and captured, SCRN tanh-rnn and triton, eager
#       and captured (triton rows only if (a) passed);
#   (d) kernels per step and kernel time per step (torch.profiler) for the same models;
#   (e) ptb-medium-scrn-nd-wt at the paper profile on PTB (auto: triton), capped in wall-clock time.
# Writes to $OUT (default benchmarks/results/gpu-triton-check). Needs data/prepared/ptb for (e) only.
. benchmarks/check_prologue.sh gpu-triton-check
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PY" -c 'import torch, triton; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "triton", triton.__version__, "gpu", torch.cuda.get_device_name())'

# (a) exactness of the Triton kernels (~1 min, most of it compiling)
timeout 110 "$PY" -m benchmarks.gpu_exactness --device cuda --kernels triton --graph-kernels auto triton 2>&1 | tee "$OUT/exactness-triton.txt"
if grep -q "^ALL PASS" "$OUT/exactness-triton.txt"; then KERNELS=(tanh-rnn triton); else KERNELS=(tanh-rnn); status=1; fi

# (b) the recurrence alone (~1 min)
if [ ${#KERNELS[@]} -eq 2 ]; then
  timeout 100 "$PY" -m benchmarks.recurrence_micro --out "$OUT" 2>&1 | tee "$OUT/recurrence-micro.txt" || status=1
fi

# (c) the training step (~2 min)
timeout 150 "$PY" -m benchmarks.train_step --device cuda --kernels "${KERNELS[@]}" --graph-kernels "${KERNELS[@]}" \
  --graph-lstm --rounds 3 --steps 30 --warmup 10 --out "$OUT" 2>&1 | tee "$OUT/train-step.txt" || status=1

# (d) where the step's GPU time goes (~1 min)
timeout 80 "$PY" -m benchmarks.kernel_profile --device cuda --kernels "${KERNELS[@]}" --out "$OUT" 2>&1 \
  | grep -v "^USDT\|profiler_st" | tee "$OUT/kernel-profile.txt" || status=1

# (e) a real run, capped; epochs.csv is written after every epoch
SCRATCH=$(mktemp -d)
timeout "${TRAIN_CAP:-75}" "$PY" -m stages.train --run ptb-medium-scrn-nd-wt --profile paper --device cuda --no-progress \
  --results "$SCRATCH/results" --checkpoints "$SCRATCH/checkpoints" 2>&1 | tee "$OUT/train-medium-paper-log.txt"
cp "$SCRATCH/results/paper/ptb-medium-scrn-nd-wt/epochs.csv" "$OUT/train-medium-paper-epochs.csv" 2>/dev/null \
  || echo "no epochs.csv (no epoch finished)"
rm -rf "$SCRATCH"

ls -la "$OUT"
exit $status
