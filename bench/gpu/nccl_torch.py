"""bench/gpu/nccl_torch.py: torch.distributed (NCCL backend) all-reduce and broadcast on the same fp32
buffers as bench/gpu/nccl_pair.c (64 MiB - 1 GiB, 2 warm-up + 10 timed calls, a barrier before timing),
for the comparison row of docs/benchmarks.md. usage: python3 bench/gpu/nccl_torch.py [P]"""
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def run(rank, world):
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world, device_id=torch.device("cuda", rank))
    size = 64 << 20
    while size <= 1 << 30:
        x = torch.zeros(size // 4, dtype=torch.float32, device="cuda")
        t = []
        for op in (lambda: dist.all_reduce(x), lambda: dist.broadcast(x, 0)):
            for _ in range(2):
                op()
            torch.cuda.synchronize()
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(10):
                op()
            torch.cuda.synchronize()
            t.append((time.perf_counter() - t0) / 10)
        if rank == 0:
            print("torch NCCL %d GPUs %5d MiB fp32: all-reduce %8.3f ms %7.1f GB/s | broadcast %8.3f ms %7.1f GB/s"
                  % (world, size >> 20, t[0] * 1e3, size / t[0] / 1e9, t[1] * 1e3, size / t[1] / 1e9), flush=True)
        size *= 4
    dist.destroy_process_group()


if __name__ == "__main__":
    world = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    mp.spawn(run, args=(world,), nprocs=world)
