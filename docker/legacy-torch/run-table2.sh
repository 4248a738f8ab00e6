#!/usr/bin/env bash
# Entry point of the legacy-torch image: Mikolov et al.'s original Torch7 SCRNN code on the four
# Table 2 configurations with the Table 1 "Mikolov et al." hyperparameters (the command lines of
# docs/legacy.md), in parallel up to the available cores. It runs natively too (docs/legacy.md).
# The code has no way to resume from its per-epoch checkpoints: a stopped run starts over.
#
#   run-table2.sh [--dry-run] [RUN ...]     RUN: ptb-baseline-{40-10,90-10,100-40,300-40} (default: all)
#
# Each run gets its own writable working directory, $LEGACY_WORK_DIR/<run>, holding a copy of the
# code and of the raw PTB files as data/ptb/ptb.{train,valid,test}.txt (the code writes its .th7
# caches beside them, and would try to download the data if data/ptb were missing). Its stdout
# goes to $LEGACY_RESULTS_DIR/<run>/train.log (stderr to train.err), the exact command line to
# command.txt, the exit status to exit_code. Per-epoch checkpoints (36-165 MB each, in float64)
# are pruned while the run goes on: only the newest is kept.
# --dry-run prints the exact command lines and touches nothing; it also runs outside Docker.
#
# Environment (defaults are the container's mounts):
#   LEGACY_DATA_DIR     raw PTB: {train,valid,test}.txt of the download stage, or ptb.*.txt (/data/ptb, read-only)
#   LEGACY_RESULTS_DIR  logs (/results)
#   LEGACY_WORK_DIR     per-run working directories (/work)
#   LEGACY_CODE_DIR     the SCRNNs checkout (/opt/scrnns)
#   LEGACY_EPOCHS       -nepochs (100, as in the Table 2 command line; fewer makes a "reduced" run)
#   LEGACY_JOBS         runs at once (min(4, cores))
#   LEGACY_THREADS      BLAS/OpenMP threads of each run (cores/jobs)
#   LEGACY_PRUNE_EVERY  seconds between checkpoint prunes (60)
#   TH                  the Torch7 interpreter (th)
set -euo pipefail

DATA_DIR=${LEGACY_DATA_DIR:-/data/ptb}
RESULTS_DIR=${LEGACY_RESULTS_DIR:-/results}
WORK_DIR=${LEGACY_WORK_DIR:-/work}
CODE_DIR=${LEGACY_CODE_DIR:-/opt/scrnns}
EPOCHS=${LEGACY_EPOCHS:-100}
PRUNE_EVERY=${LEGACY_PRUNE_EVERY:-60}
TH=${TH:-th}

# run name -> "-nhid H -nslow S"; the largest first, so that it is never the one left waiting
ALL_RUNS=(ptb-baseline-300-40 ptb-baseline-100-40 ptb-baseline-90-10 ptb-baseline-40-10)
declare -A SIZE=(
  [ptb-baseline-40-10]="-nhid 40 -nslow 10"
  [ptb-baseline-90-10]="-nhid 90 -nslow 10"
  [ptb-baseline-100-40]="-nhid 100 -nslow 40"
  [ptb-baseline-300-40]="-nhid 300 -nslow 40"
)

die() { echo "run-table2: error: $*" >&2; exit 2; }

dry_run=0
runs=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    ptb-baseline-*) [[ -n "${SIZE[$arg]:-}" ]] || die "unknown run '$arg' (known: ${ALL_RUNS[*]})"; runs+=("$arg") ;;
    *) die "unknown argument '$arg' (usage: run-table2.sh [--dry-run] [RUN ...])" ;;
  esac
done
[[ ${#runs[@]} -gt 0 ]] || runs=("${ALL_RUNS[@]}")
[[ "$EPOCHS" =~ ^[1-9][0-9]*$ ]] || die "LEGACY_EPOCHS must be a positive integer, not '$EPOCHS'"

cores=$(nproc 2>/dev/null || echo 1)
njobs=${LEGACY_JOBS:-$(( cores < 4 ? cores : 4 ))}
[[ "$njobs" =~ ^[1-9][0-9]*$ ]] || die "LEGACY_JOBS must be a positive integer, not '$njobs'"
(( njobs > ${#runs[@]} )) && njobs=${#runs[@]}
threads=${LEGACY_THREADS:-$(( cores > njobs ? cores / njobs : 1 ))}  # more jobs than cores: one thread each
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "LEGACY_THREADS must be a positive integer, not '$threads'"

# The Table 2 command line (docs/legacy.md): use th (not cuth), no -i, -devid -1 for the CPU.
command_line() {
  echo "$TH main.lua -dset ptb -name scrnn_sm ${SIZE[$1]} -batchsz 32 -eta 0.05 -etashrink 1.5" \
       "-blen 50 -bfreq 5 -cliptype scale -gradinputclip 50 -isvalid 1 -istest 1 -noprogress" \
       "-nepochs $EPOCHS -devid -1"
}

full_line() {  # what actually runs, as one shell line
  local run=$1
  echo "cd $WORK_DIR/$run && OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads stdbuf -oL -eL" \
       "$(command_line "$run") > $RESULTS_DIR/$run/train.log 2> $RESULTS_DIR/$run/train.err"
}

if (( dry_run )); then
  echo "# ${#runs[@]} runs, $njobs at a time, $threads BLAS thread(s) each; data from $DATA_DIR"
  for run in "${runs[@]}"; do full_line "$run"; done
  exit 0
fi

# ---------------------------------------------------------------------------- real runs

split_file() {  # the download stage's name, else Mikolov's
  if [[ -f "$DATA_DIR/$1.txt" ]]; then echo "$DATA_DIR/$1.txt"
  elif [[ -f "$DATA_DIR/ptb.$1.txt" ]]; then echo "$DATA_DIR/ptb.$1.txt"
  else die "no $DATA_DIR/$1.txt (nor ptb.$1.txt): mount the download stage's data/raw/ptb there (dvc repro download@ptb)"
  fi
}
for split in train valid test; do split_file "$split" >/dev/null; done
[[ -f "$CODE_DIR/main.lua" ]] || die "no $CODE_DIR/main.lua: LEGACY_CODE_DIR must hold the SCRNNs code"
mkdir -p "$RESULTS_DIR" "$WORK_DIR" || die "cannot create $RESULTS_DIR or $WORK_DIR"

prune() {  # keep only the newest model_<epoch> of a run; model.log stays
  local dir
  for dir in "$1"/output/*/*/; do
    [[ -d "$dir" ]] || continue
    # shellcheck disable=SC2012
    ls "$dir" | grep -E '^model_[0-9]+$' | sort -t_ -k2 -n | head -n -1 | sed "s|^|$dir|" | xargs -r rm -f
  done
}

run_one() {
  local run=$1 work=$WORK_DIR/$1 out=$RESULTS_DIR/$1 split status pruner
  rm -rf "$work" && mkdir -p "$work/data/ptb" "$out"
  rm -f "$out/metrics.json" "$out/exit_code"  # numbers of an older run must not outlive it
  (cd "$CODE_DIR" && tar --exclude=.git --exclude=./data/ptb -cf - .) | (cd "$work" && tar -xf -)
  for split in train valid test; do cp "$(split_file "$split")" "$work/data/ptb/ptb.$split.txt"; done
  full_line "$run" > "$out/command.txt"
  # the pruner: its sleep is killed with it, and it holds none of the caller's file descriptors
  ( trap 'kill "$nap" 2>/dev/null; exit 0' TERM
    while :; do sleep "$PRUNE_EVERY" & nap=$!; wait "$nap"; prune "$work"; done ) </dev/null >/dev/null 2>&1 &
  pruner=$!
  status=0
  (cd "$work" && OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads \
     stdbuf -oL -eL $(command_line "$run") > "$out/train.log" 2> "$out/train.err") || status=$?
  kill "$pruner" 2>/dev/null || true
  wait "$pruner" 2>/dev/null || true
  prune "$work"
  echo "$status" > "$out/exit_code"
  # the container runs as root: hand the outputs to the owner of the mounted results directory
  chown -R "$(stat -c %u:%g "$RESULTS_DIR")" "$out" 2>/dev/null || true
  echo "run-table2: $run finished with exit status $status (log: $out/train.log)"
  return "$status"
}

echo "run-table2: ${#runs[@]} runs, $njobs at a time, $threads BLAS thread(s) each, $EPOCHS epochs"
for run in "${runs[@]}"; do
  while (( $(jobs -rp | wc -l) >= njobs )); do wait -n 2>/dev/null || true; done
  echo "run-table2: starting $run: $(command_line "$run")"
  run_one "$run" &
done
wait
failed=0
for run in "${runs[@]}"; do
  [[ "$(cat "$RESULTS_DIR/$run/exit_code" 2>/dev/null)" == 0 ]] || { echo "run-table2: $run failed (see $RESULTS_DIR/$run/train.err)" >&2; failed=1; }
done
echo "run-table2: done; parse the logs with: python -m stages.legacy_results"
exit "$failed"
