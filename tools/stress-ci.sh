#!/usr/bin/env bash
# N consecutive fresh-clone `bash .ci/run` passes of this checkout's HEAD with both cores busy
# (stress-ng --cpu 2, Debian's stress-ng), stopping at the first failure. Logs in $OUT (default
# /tmp/stress-ci). stress-ng is stopped by its PID after each run.
set -u
n=${1:-5}
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp/stress-ci}
mkdir -p "$out"
head=$(git -C "$repo" rev-parse HEAD)
echo "head $head, $n runs" | tee -a "$out/summary.log"
for i in $(seq 1 "$n"); do
  dir="$out/clone-$i"
  rm -rf "$dir"
  git clone -q "$repo" "$dir" && git -C "$dir" checkout -q "$head"
  stress-ng --cpu 2 --timeout 3600s >/dev/null 2>&1 &
  stress=$!
  start=$(date +%s)
  (cd "$dir" && bash .ci/run) >"$out/run-$i.log" 2>&1
  rc=$?
  kill "$stress"
  wait "$stress" 2>/dev/null
  echo "run $i rc=$rc wall=$(($(date +%s) - start))s $(grep -E '[0-9]+ passed' "$out/run-$i.log" | tail -1)" | tee -a "$out/summary.log"
  [ "$rc" -eq 0 ] || { echo "stopped at the first failure" | tee -a "$out/summary.log"; exit 1; }
done
