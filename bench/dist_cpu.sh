#!/usr/bin/env bash
# bench/dist_cpu.sh: the CPU figures of multi-rank runs (docs/benchmarks.md "Distributed runs",
# docs/reliability.md F1/F2). Usage: bench/dist_cpu.sh [throughput|bytes|kill|hang]... (default: all)
#   throughput  rollout tokens/s of the demo model with 1, 2, 4 colocated ranks and 1 learner + 1 rollout
#               rank (5 RL steps from a random init: every group is dropped, so this is generation only)
#   bytes       bytes each rank sends per step (RUN_DIR/dist/rank_NNNN.jsonl sent_bytes), demo model
#   kill        5 trials: kill -9 of rank 1 held at step 5; seconds until rank 0 is gone
#   hang        3 trials: rank 1 hangs at step 2, dist.timeout_s=2; seconds until mpirun exits, exit code
set -u
cd "$(dirname "$0")/.."
BIN=${CISPO_BIN:-build/cispo}
OUT=${CISPO_BENCH_DIR:-/tmp/cispo_dist_bench}
M="mpirun --oversubscribe --allow-run-as-root"
TINY="model.hidden_size=32 model.intermediate_size=32 model.num_layers=2 model.full_attn_every=2 model.head_dim=8
 model.block_size=4 sft.steps=20 sft.batch_size=8 rl.prompts_per_step=4 rl.group_size=4 rl.minibatches=2
 rl.max_gen_batches=2 data.eval_size=8 rollout.max_new_tokens=24 data.difficulty_max=4 ckpt.every=2 run.threads=1
 run.log_level=warn rl.dynamic_sampling=false"
mkdir -p "$OUT"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores, commit $(git rev-parse --short HEAD)"

mean_tok() { python3 -c "
import json,sys
r=[json.loads(l) for l in open('$1/timing.jsonl')][1:]
print('%.0f rollout tok/s, %.2f s/step' % (sum(x['rollout_tokens_per_s'] for x in r)/len(r), sum(x['step_s'] for x in r)/len(r)))"; }

throughput() {
  local C="configs/demo.yaml sft.steps=0 rl.sft_first=false rl.steps=5 data.eval_size=8 eval.samples=1 run.threads=1 ckpt.every=0 run.log_level=warn"
  rm -rf "$OUT"/tp*
  $BIN train $C run.dir="$OUT/tp1" >/dev/null 2>&1 && echo "np 1: $(mean_tok "$OUT/tp1")"
  $M -np 2 $BIN train $C run.dir="$OUT/tp2" >/dev/null 2>&1 && echo "np 2 colocated: $(mean_tok "$OUT/tp2")"
  $M -np 4 $BIN train $C run.dir="$OUT/tp4" >/dev/null 2>&1 && echo "np 4 colocated: $(mean_tok "$OUT/tp4")"
  $M -np 2 $BIN train $C run.dir="$OUT/tp2d" dist.colocated=false dist.learner_ranks=1 dist.rollout_ranks=1 \
    >/dev/null 2>&1 && echo "np 2, 1 learner + 1 rollout: $(mean_tok "$OUT/tp2d")"
}

bytes() {
  local C="configs/demo.yaml sft.steps=0 rl.sft_first=false rl.steps=3 rl.dynamic_sampling=false data.eval_size=4 eval.samples=1 run.threads=1 ckpt.every=0 run.log_level=warn"
  rm -rf "$OUT"/by*
  $M -np 2 $BIN train $C run.dir="$OUT/by2" >/dev/null 2>&1
  $M -np 4 $BIN train $C run.dir="$OUT/by4d" dist.colocated=false dist.learner_ranks=2 dist.rollout_ranks=2 >/dev/null 2>&1
  for f in "$OUT"/by2/dist/*.jsonl "$OUT"/by4d/dist/*.jsonl; do
    python3 -c "
import json
r=[json.loads(l) for l in open('$f')]
print('$f'.split('/')[-3], r[0]['event'], 'rank', r[0]['rank'], 'sends %.2f MB per step' % ((r[-1]['sent_bytes']-r[0]['sent_bytes'])/max(1,len(r)-1)/1e6))"
  done
}

kill_trials() {
  for t in 1 2 3 4 5; do
    rm -rf "$OUT/kt"
    CISPO_TEST_HANG=1:5 $M -np 2 $BIN train run.dir="$OUT/kt" $TINY rl.steps=10 dist.timeout_s=0 >"$OUT/kt.out" 2>&1 &
    local mp=$!
    while [ ! -e "$OUT/kt/dist/test_hang_1_5" ]; do sleep 0.05; done
    local p0 p1 s e
    p0=$(cat "$OUT/kt/dist/rank_0000.pid"); p1=$(cat "$OUT/kt/dist/rank_0001.pid")
    s=$(date +%s.%N); kill -9 "$p1"
    while kill -0 "$p0" 2>/dev/null && [ "$(awk '{print $3}' /proc/$p0/stat 2>/dev/null)" != Z ]; do sleep 0.02; done
    e=$(date +%s.%N); wait $mp; local rc=$?
    echo "kill trial $t: rank 0 gone $(echo "$e - $s" | bc) s after the kill; mpirun exit $rc; $(grep -c 'process rank 1' "$OUT/kt.out") line(s) naming rank 1"
  done
}

hang_trials() {
  for t in 1 2 3; do
    rm -rf "$OUT/ht"
    CISPO_TEST_HANG=1:2 $M -np 2 $BIN train run.dir="$OUT/ht" $TINY rl.steps=10 dist.timeout_s=2 >"$OUT/ht.out" 2>&1 &
    local mp=$!
    while [ ! -e "$OUT/ht/dist/test_hang_1_2" ]; do sleep 0.02; done
    local s e; s=$(date +%s.%N); wait $mp; local rc=$?; e=$(date +%s.%N)
    echo "hang trial $t: job ended $(echo "$e - $s" | bc) s after the hang began; exit $rc; $(grep -o '\[cispo rank [0-9]\] watchdog: no progress for [0-9.]* s' "$OUT/ht.out" | tr '\n' ';')"
  done
}

what=${*:-throughput bytes kill hang}
for w in $what; do
  case $w in
    throughput) throughput ;; bytes) bytes ;; kill) kill_trials ;; hang) hang_trials ;;
    *) echo "unknown: $w" >&2; exit 2 ;;
  esac
done
