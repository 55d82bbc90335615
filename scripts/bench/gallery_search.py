"""PyTorch's exact nearest-neighbour search, the baseline of scripts/bench/gallery.mjs: N random
embeddings of E values in memory, queries scored against all of them in blocks and the best k
kept (torch.topk), by the two scores siamese-torch's galleries use: the Euclidean distance
(as a matrix product, the
gallery's norms computed once) and the pair-ce head's weighted L1 distance,
bias + w . |q - g|. Prints one JSON line: milliseconds per search for 1 and for 64 queries.

Usage: python3 gallery_search.py --rows 1000000 --dims 512 --threads 2 --k 10
"""
import argparse
import json
import time

import torch

import torch_env

parser = argparse.ArgumentParser()
parser.add_argument('--rows', type=int, default=1_000_000)
parser.add_argument('--dims', type=int, default=512)
parser.add_argument('--threads', type=int, default=2)
parser.add_argument('--k', type=int, default=10)
parser.add_argument('--block', type=int, default=65536)
parser.add_argument('--reps', type=int, default=5)
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
gallery = torch.randn(args.rows, args.dims)
weights = torch.randn(args.dims)


def search(queries, score):
    best_scores, best_rows = None, None
    for start in range(0, args.rows, args.block):
        block = gallery[start:start + args.block]
        scores = score(queries, block, start) if score is euclidean else score(queries, block)
        values, rows = scores.topk(min(args.k, block.shape[0]), dim=1)
        rows += start
        if best_scores is not None:
            values = torch.cat([best_scores, values], 1)
            rows = torch.cat([best_rows, rows], 1)
            values, order = values.topk(args.k, dim=1)
            rows = rows.gather(1, order)
        best_scores, best_rows = values, rows
    return best_rows


# |q - g|^2 = |q|^2 - 2 q . g + |g|^2: the ranking needs 2 q . g - |g|^2, a matrix product (OpenBLAS)
# and the gallery's squared norms, computed once, as a gallery kept in memory would keep them.
norms = gallery.pow(2).sum(1)


def euclidean(q, g, start=None):
    return 2 * (q @ g.T) - norms[start:start + g.shape[0]]


def weighted_l1(q, g):
    # [Q, B] without a [Q, B, E] tensor: one query at a time.
    return torch.stack([(g - row).abs_() @ weights for row in q]) + 0.1


def timed(queries, score):
    search(queries, score)  # warm-up
    times = []
    for _ in range(args.reps):
        start = time.perf_counter()
        search(queries, score)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return times[len(times) // 2]


with torch.no_grad():
    out = {'rows': args.rows, 'dims': args.dims, 'threads': args.threads, 'k': args.k}
    for name, score in (('euclidean', euclidean), ('pairCe', weighted_l1)):
        for count in (1, 64):
            if name == 'pairCe' and count == 64 and args.rows > 100_000:
                continue  # minutes a search: the one-query figure says enough
            out[f'{name}{count}'] = timed(torch.randn(count, args.dims), score)
    out['runtime'] = torch_env.runtime_report()
    print(json.dumps(out))
