#!/usr/bin/env bash
# The CUDA-graph check of issue #7 (< 3.5 min on an H200), from the repository root:
#   (a) exactness: every fast kernel and the captured training step against eager (PASS/FAIL);
#   (b) the training-step benchmark with fewer rounds, with "+ CUDA graph" rows for the SCRN
#       (auto kernel) and a labelled extra row for the LSTM with its step captured.
# Needs python3 with torch (CUDA), numpy, pyyaml, tqdm; no data. Writes to $OUT (default
# benchmarks/results/gpu-graph-check). DEVICE=cpu bash benchmarks/gpu_graph_check.sh is a dry run.
. benchmarks/check_prologue.sh gpu-graph-check
DEVICE=${DEVICE:-cuda}
if [ "$DEVICE" = cpu ]; then  # dry run: the same commands, sized for a CPU
  EXACT_ARGS=(--models ptb-small-scrn-nd-wt); BENCH_ARGS=(--quick --sizes small --kernels scan --rounds 1 --steps 1 --warmup 1)
else
  EXACT_ARGS=(); BENCH_ARGS=(--kernels tanh-rnn --rounds 3 --steps 30 --warmup 10)
fi

"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "gpu", torch.cuda.is_available() and torch.cuda.get_device_name())'

# (a) exactness, the graph cases included (~40 s)
timeout 90 "$PY" -m benchmarks.gpu_exactness --device "$DEVICE" "${EXACT_ARGS[@]}" 2>&1 | tee "$OUT/exactness.txt" || status=1

# (b) benchmark: LSTM (eager cuDNN), SCRN tanh-rnn eager and + CUDA graph, LSTM + CUDA graph (~1 min)
timeout 120 "$PY" -m benchmarks.train_step --device "$DEVICE" "${BENCH_ARGS[@]}" --graph-lstm --out "$OUT" 2>&1 | tee "$OUT/train-step.txt" || status=1

ls -la "$OUT"
exit $status
