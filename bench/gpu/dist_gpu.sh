#!/usr/bin/env bash
# bench/gpu/dist_gpu.sh: BENCHMARKS.md B10 on a machine with two GPUs: configs/bench_dist_gpu.yaml (238.6M
# parameters, 16 prompts x 8 samples x 256 tokens per step) run as
#   (a) 1 GPU, a single process;
#   (b) 2 ranks colocated (data parallel: each generates half of every round and learns on half of every
#       mini-batch, gradients summed over NCCL in rank order);
#   (c) 2 ranks disaggregated: rank 0 learns, rank 1 generates; BF16 weights over NCCL after every update;
#   (d) as (c) with dist.max_staleness=1 (generation of step t+1 overlaps the update of step t), when
#       STALE=1.
# then prints one table from rank 0's timing.jsonl (means over steps 2..N, step 1 being warm-up) and the
# rollout rank's RUN_DIR/dist/rank_0001.jsonl: steps/s, rollout and learner tokens/s, weight-sync ms per
# step that syncs (the last step sends nothing; rank 0: BF16 conversion + hash + header + broadcast, over all
# steps / syncs; rollout rank: broadcast, then hash + widening, per version), MB per sync, and data-parallel
# efficiency = steps/s of (b) / (2 x steps/s of (a)) (same global batch per step).
# NVLink multicast stays off (NCCL_NVLS_ENABLE=0). Each layout runs under a time limit (LIMIT seconds,
# default 110; a run cut short still counts the steps it finished); about 5 minutes in all.
#   usage (on the GPU machine): bench/gpu/dist_gpu.sh [BUNDLE]   BUNDLE: folder made by tools/gpu_bundle.sh
#   (cispo, lib/, configs/), default build-gpurun. Environment: STEPS (default 10), LIMIT, STALE=1,
#   MPIRUN (default mpirun), OUT (a JSON copy of the table goes to $OUT/dist_gpu.json when set).
set -u
B=$(cd "${1:-build-gpurun}" && pwd)
STEPS=${STEPS:-10}
LIMIT=${LIMIT:-110}
W=${CISPO_BENCH_DIR:-/tmp/cispo_dist_gpu}
export NCCL_NVLS_ENABLE=0
export LD_LIBRARY_PATH=$B/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
MPIRUN=${MPIRUN:-mpirun}
command -v "$MPIRUN" >/dev/null || { echo "dist_gpu.sh: $MPIRUN not found (set MPIRUN)" >&2; exit 1; }
M="$MPIRUN --oversubscribe --allow-run-as-root -x NCCL_NVLS_ENABLE -x LD_LIBRARY_PATH -np 2"
CFG="$B/configs/bench_dist_gpu.yaml rl.steps=$STEPS"
DIS="dist.colocated=false dist.learner_ranks=1 dist.rollout_ranks=1"
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader
rm -rf "$W"
mkdir -p "$W"

run() { # name, command...: one layout under the time limit
  local name=$1 t0=$SECONDS
  shift
  timeout "$LIMIT" "$@" run.dir="$W/$name" >"$W/$name.log" 2>&1
  echo "$name: exit $? after $((SECONDS - t0)) s"
  tail -3 "$W/$name.log" | sed 's/^/  /'
}

run a "$B/cispo" train $CFG
run b $M "$B/cispo" train $CFG
run c $M "$B/cispo" train $CFG $DIS
[ "${STALE:-0}" = 1 ] && run d $M "$B/cispo" train $CFG $DIS dist.max_staleness=1 rl.old_logp=rollout

python3 - "$W" "${OUT:-}" <<'PY'
import json, os, sys
W, out = sys.argv[1], sys.argv[2]
def rows(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip()]
    except OSError:
        return []
def mean(xs):
    return sum(xs) / len(xs) if xs else float('nan')
res = {}
for name, what in [('a', '1 GPU'), ('b', '2 ranks colocated'), ('c', '1 learner + 1 rollout'),
                   ('d', '1 learner + 1 rollout, staleness 1')]:
    t = rows(f'{W}/{name}/timing.jsonl')
    if not t:
        continue
    r = t[1:] if len(t) > 1 else t
    roll = [x for x in rows(f'{W}/{name}/dist/rank_0001.jsonl') if x.get('event') == 'recv']
    # weight sync per version sent: all of rank 0's sync seconds (snapshots included) over the syncs
    synced = [x for x in t if x.get('weight_sync_bytes', 0) > 0]
    sync_ms = 1e3 * sum(x['weight_sync_s'] for x in t) / len(synced) if synced else None
    res[name] = dict(layout=what, steps=len(t), steps_per_s=1 / mean([x['step_s'] for x in r]),
                     rollout_tok_s=mean([x['rollout_tokens_per_s'] for x in r]),
                     learner_tok_s=mean([x['learner_tokens_per_s'] for x in r]),
                     sync_ms_rank0=sync_ms,
                     sync_mb=mean([x['weight_sync_bytes'] for x in synced]) / 1e6 if synced else None,
                     sync_ms_rollout=1e3 * mean([x['sync_s'] for x in roll]) if roll else None,
                     bcast_ms_rollout=1e3 * mean([x['xfer_s'] for x in roll]) if roll else None)
if 'a' in res and 'b' in res:
    res['b']['dp_efficiency'] = res['b']['steps_per_s'] / (2 * res['a']['steps_per_s'])
f = lambda v, p='%.1f': '-' if v is None else p % v
print('\n| layout | steps | steps/s | rollout tok/s | learner tok/s | weight sync ms/step (rank 0) '
      '| rollout rank: sync ms (broadcast ms) | MB per sync | DP efficiency |')
print('|---|---|---|---|---|---|---|---|---|')
for k, v in res.items():
    print(f"| ({k}) {v['layout']} | {v['steps']} | {v['steps_per_s']:.3f} | {v['rollout_tok_s']:,.0f} | "
          f"{v['learner_tok_s']:,.0f} | {f(v['sync_ms_rank0'])} | {f(v['sync_ms_rollout'])} ({f(v['bcast_ms_rollout'], '%.2f')}) | "
          f"{f(v['sync_mb'])} | {f(v.get('dp_efficiency'), '%.2f')} |")
if out:
    os.makedirs(out, exist_ok=True)
    json.dump(res, open(f'{out}/dist_gpu.json', 'w'), indent=1)
PY
