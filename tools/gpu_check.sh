#!/usr/bin/env bash
# tools/gpu_check.sh: the one scripted GPU run (build here with tools/gpu_bundle.sh, carry the bundle):
# device facts, every gpu-labelled test with CISPO_REQUIRE_GPU=1, the CUDA benchmarks, the PyTorch
# anchors of ../shared/anchors, and a CUDA demo run, each under its own time limit, in priority order.
# Everything goes to stdout and to $OUT/log.txt; benchmarks write JSON into $OUT.
#   usage (on the GPU machine): tools/gpu_check.sh [BUNDLE] [STEPS]   STEPS: comma list of
#   tests,bench,ops,fused,rollout,moe,profile,lightning,attn,anchor_lin,anchor_hf,demo (default: all but profile),
#   and dist2 (two GPUs only, not in the default: test_dist_gpu under mpirun, then bench/gpu/dist_gpu.sh;
#   about 7 minutes)
set -u
B=$(cd "${1:-build-gpurun}" && pwd)
R=$(cd "$(dirname "$0")/.." && pwd)
STEPS=${2:-tests,bench,ops,fused,rollout,moe,lightning,attn,anchor_lin,demo,anchor_hf}
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
cd "$B"
export LD_LIBRARY_PATH=$B/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export CISPO_REQUIRE_GPU=1
has() { [[ ",$STEPS," == *",$1,"* ]]; }
step() { echo; echo "=== $1 ($(date +%T))"; }
step device
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
if has tests; then
  for t in test_cuda_*; do
    step "$t"
    timeout 150 "./$t" 2>&1 | tail -40
    echo "$t exit ${PIPESTATUS[0]}"
  done
fi
# ceilings for the bounds: BW (B/s) and PEAK (BF16 FLOP/s) from the environment, e.g. B0 of an earlier run
BW=${BW:-4.3e12}
PEAK=${PEAK:-790e12}
if has lightning; then step bench_cuda_lightning; timeout 120 ./bench_cuda_lightning "$OUT/bench_lightning.json" --bw "$BW" --peak "$PEAK"; fi
if has attn; then step bench_cuda_attn; timeout 150 ./bench_cuda_attn --json "$OUT/bench_attn.json" --bw "$BW" --peak "$PEAK"; fi
if has ops; then
  step bench_cuda_ops; timeout 150 ./bench_cuda_ops --json "$OUT/bench_ops.json"
  step ops_torch; (cd anchors && OUT=$OUT timeout 200 python ops_torch.py 2>&1 | tail -40)
fi
if has profile; then step bench_cuda_model_profile; timeout 300 ./bench_cuda_model --profile --config "${PROFILE_CONFIG:-h1024_L16_E8}" 2>&1 | tail -130; fi
if has bench; then # one process per config: a shape that runs out of memory does not take the others with it
  for cfg in h768_L12_E8 h1024_L16_E8 h1536_L20_E8; do
    step "bench_cuda_model $cfg"; timeout 200 ./bench_cuda_model --config $cfg --json "$OUT/bench_model_$cfg.json"
  done
fi
if has fused; then step bench_cuda_fused; timeout 120 ./bench_cuda_fused --json "$OUT/bench_fused.json" --params "${FUSED_PARAMS:-1e9}"; fi
if has rollout; then step bench_cuda_rollout; timeout 150 ./bench_cuda_rollout --json "$OUT/bench_rollout.json"; fi
if has moe; then # MoE ops vs CPU with the per-expert GEMM loop (the tests step ran the grouped path), then timings both ways
  step moe
  CISPO_CUDA_MOE_LOOP=1 timeout 120 ./test_cuda_moe 2>&1 | tail -30
  echo "test_cuda_moe (CISPO_CUDA_MOE_LOOP=1) exit ${PIPESTATUS[0]}"
  timeout 90 ./bench_cuda_moe --json "$OUT/bench_moe.json"
  CISPO_CUDA_MOE_LOOP=1 timeout 90 ./bench_cuda_moe --json "$OUT/bench_moe_loop.json"
fi
if has anchor_lin; then step anchor_lightning; (cd anchors && OUT=$OUT timeout 150 python lightning_torch.py 2>&1 | tail -12); fi
if has demo; then
  step demo_cuda
  rm -rf /tmp/demo_cuda
  timeout 120 ./cispo train configs/demo.yaml run.backend=cuda run.dir=/tmp/demo_cuda 2>&1 | tail -8
  python3 - <<'PY'
import json
rows=[json.loads(l) for l in open('/tmp/demo_cuda/timing.jsonl')]
print("timing.jsonl last row:", rows[-1])
m=[json.loads(l) for l in open('/tmp/demo_cuda/metrics.jsonl')]
print("mismatch_corr min:", min(r['mismatch_corr'] for r in m if r.get('mismatch_corr') is not None))
PY
fi
if has dist2; then
  export NCCL_NVLS_ENABLE=0
  step test_dist_gpu
  CISPO_BINARY_DIR=$B timeout 300 ./test_dist_gpu 2>&1 | tail -60
  echo "test_dist_gpu exit ${PIPESTATUS[0]}"
  step dist_gpu_bench
  OUT=$OUT timeout 420 bash "$R/bench/gpu/dist_gpu.sh" "$B"
fi
if has anchor_hf; then step anchor_hf; (cd anchors && OUT=$OUT timeout 280 python hf_minimax.py 2>&1 | tail -8); fi
step done
