#!/usr/bin/env python3
"""The raw cost of one step's gradient all-reduce between processes on this machine (part of
scripts/bench/distributed.mjs): c10d's ProcessGroupGloo, the class siamese-torch's ranks use,
reached here through PyTorch's Python binding of it. Sums a float32 buffer of the gradients' size
over --world processes on 127.0.0.1, --iters times after 3 warm-up sums, and prints one JSON line
with the median milliseconds.

Usage: python3 scripts/bench/allreduce.py --numel 2208770 [--world 2] [--iters 30] [--port 29533]
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def rank_main(rank, args, results):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(args.port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=args.world)
    buffer = torch.ones(args.numel)
    times = []
    for i in range(3 + args.iters):
        dist.barrier()
        started = time.perf_counter()
        dist.all_reduce(buffer)
        if i >= 3:
            times.append((time.perf_counter() - started) * 1000)
    if rank == 0:
        results.put(statistics.median(times))
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--numel", type=int, required=True)
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--port", type=int, default=29533)
    args = p.parse_args()
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=rank_main, args=(r, args, results)) for r in range(args.world)]
    for proc in procs:
        proc.start()
    ms = results.get(timeout=300)
    for proc in procs:
        proc.join(60)
    print(json.dumps({"world": args.world, "numel": args.numel, "bytes": args.numel * 4, "medianMs": ms,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
