#!/usr/bin/env bash
# `bnlab train --distributed` on two MPI ranks: (1) with --sync-bn and per-rank batch 32 it
# reaches the accuracy of one process with batch 64 on a subset of MNIST, within noise;
# (2) a rank that dies takes the job down with an error instead of leaving the other to hang.
set -euo pipefail
bnlab=$1
mpiexec=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
subset="--limit-train 12800 --limit-test 2000 --log-interval 100 --seed 1"
mpirun_flags="--allow-run-as-root --oversubscribe -np 2"

"$bnlab" train $subset --batch-size 64 --threads 2 > "$work/one.log"
$mpiexec $mpirun_flags "$bnlab" train --distributed --sync-bn $subset --batch-size 32 --threads 1 > "$work/two.log"
one=$(sed -n 's/^test accuracy: \([0-9.]*\)%$/\1/p' "$work/one.log")
two=$(sed -n 's/^test accuracy: \([0-9.]*\)%$/\1/p' "$work/two.log")
echo "1 process x batch 64: $one%   2 ranks x batch 32, sync BN: $two%"
awk -v a="$one" -v b="$two" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1.0 && a > 90 && b > 90) }' ||
  { echo "FAIL: accuracies differ by more than 1 point (or training failed)"; exit 1; }

# Kill one rank mid-run: mpirun must end the job, with a non-zero status, well within the timeout.
$mpiexec $mpirun_flags "$bnlab" train --distributed --sync-bn --epochs 5 --threads 1 \
  > "$work/die.log" 2>&1 &
job=$!
for _ in $(seq 100); do
  grep -q "Train Epoch" "$work/die.log" 2>/dev/null && break
  sleep 0.2
done
victim=$(pgrep -f "$bnlab train --distributed --sync-bn --epochs 5" | tail -1)
kill -9 "$victim"
start=$(date +%s)
status=0
timeout 120 tail --pid="$job" -f /dev/null || { echo "FAIL: the job hangs after a rank died"; kill -9 $job; exit 1; }
wait "$job" || status=$?
echo "after killing rank process $victim, mpirun exited with status $status in $(( $(date +%s) - start )) s"
[ "$status" -ne 0 ] || { echo "FAIL: the job reported success"; exit 1; }
