#!/usr/bin/env bash
# scripts/supervise.sh: run a training job and restart it from its newest checkpoint when it fails
# (RELIABILITY.md F1). A run survives a crashed or hung rank and loses at most one ckpt.every interval.
#
#   scripts/supervise.sh [-n MAX_RESTARTS] [-d DELAY_S] -- mpirun -np 4 build/cispo train CONFIG [k=v ...]
#
# The command runs as given; after a non-zero exit it runs again with `--resume auto` (replacing any
# --resume value), up to MAX_RESTARTS times (default 3), DELAY_S seconds apart (default 2). Every
# attempt is logged to stderr with its exit status and duration; the exit status is the last attempt's.
# Exit statuses: 75 = a rank's watchdog tripped (hung rank); others come from mpirun / the failed rank.
set -u
max=3
delay=2
while [ $# -gt 0 ]; do
  case "$1" in
    -n) max="$2"; shift 2 ;;
    -d) delay="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
if [ $# -eq 0 ]; then
  echo "supervise: no command given" >&2
  echo "HINT: scripts/supervise.sh -n 3 -- mpirun -np 2 build/cispo train CONFIG" >&2
  exit 2
fi
case "$max" in ''|*[!0-9]*) echo "supervise: -n wants a number of restarts, got '$max'" >&2; exit 2 ;; esac

cmd=("$@")
attempt=0
while :; do
  attempt=$((attempt + 1))
  start=$(date +%s.%N)
  "${cmd[@]}"
  status=$?
  took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  if [ "$status" -eq 0 ]; then
    echo "supervise: attempt $attempt succeeded after ${took} s" >&2
    exit 0
  fi
  if [ $((attempt - 1)) -ge "$max" ]; then
    echo "supervise: attempt $attempt exited with status $status after ${took} s; giving up after $max restart(s)" >&2
    exit "$status"
  fi
  echo "supervise: attempt $attempt exited with status $status after ${took} s; restarting with --resume auto" \
       "($((attempt)) of $max) in ${delay} s" >&2
  # the next attempts resume: replace a --resume value, or append --resume auto
  next=()
  found=0
  i=0
  while [ $i -lt ${#cmd[@]} ]; do
    if [ "${cmd[$i]}" = "--resume" ]; then
      next+=(--resume auto); found=1; i=$((i + 2))
    else
      next+=("${cmd[$i]}"); i=$((i + 1))
    fi
  done
  [ $found -eq 1 ] || next+=(--resume auto)
  cmd=("${next[@]}")
  sleep "$delay"
done
