#!/usr/bin/env python3
"""The reference recipe (docs/recipe.md) in PyTorch (Python), written to compare siamese-torch with.

Faithful to the original: the same network (conv1 1->64 k7, ReLU, max-pool 2, conv2 64->128 k5,
ReLU, conv3 128->256 k5, ReLU, linear1 2304->512, ReLU; head linear2 on |e1 - e2|), the same
"reference" pair scheme drawn once with Python's `random` (500 anchors a class, positive at
offset 0..100, negative the same index of another class), cross-entropy on the positive pair
against 1 plus on the negative pair against 0, Adam (lr 0.001, weight decay 0.0001), batch 64
triplets in a fresh random order each epoch (torch.randperm). One deviation, for comparability: the test pairs are read from
a JSON file (siamese-torch's fixed test pairs) instead of drawn with the reference scheme, which
needs 600 test images a class. Like the original, each tower image runs through the network in
its own pass (two passes per pair, four per triplet).

That is the default mode, the recipe as written. Three options give PyTorch its best showing on
the same work (the same network, initial weights, triplets in the same order, loss and Adam):
  --batched        one forward of the step's 3 x 64 images (anchors, positives, negatives: each
                   anchor embedded once, as siamese-torch does), the head on |p - a| and |n - a|;
                   evaluation embeds each test image the pairs use once (inference mode) and runs
                   the head on the pairs.
  --memory-format  auto (the default with --batched): a throw-away copy trains a few untimed steps
                   in each of contiguous and channels_last on the first batch, the faster is kept;
                   or contiguous or channels_last. Only with --batched.
  --precision bf16 torch.autocast(device, bfloat16) around the forward (training and evaluation:
                   each epoch's accuracy is measured in the precision it trained in), the loss on
                   fp32 logits, fp32 weights and Adam state. Refused where the CPU lacks
                   avx512_bf16 and amx_bf16 (oneDNN would emulate bf16, slowly), or the GPU bf16;
                   on a GPU only with --batched.
The BLAS and malloc are the process's own (see scripts/bench/common.mjs for how the benchmark
picks them); which ones were really loaded is read from /proc/self/maps and reported.

Usage: reference.py --data DIR --pairs PAIRS.json [--epochs 10] [--threads 1] [--seed 0]
                    [--out result.json] [--max-batches N]
                    [--batched] [--memory-format auto|contiguous|channels_last] [--precision fp32|bf16]
Prints one JSON line per epoch and a summary line.
"""
import argparse
import gzip
import json
import os
import random
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_env import autocast, probe_memory_format, require_bf16, runtime_report, to_format


def read_idx(path):
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    magic, count = struct.unpack('>II', data[:8])
    if magic == 2051:
        rows, cols = struct.unpack('>II', data[8:16])
        return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows, cols)
    if magic == 2049:
        return np.frombuffer(data, dtype=np.uint8, offset=8)
    raise ValueError(f'{path}: magic {magic}')


def find(folder, stem):
    for name in (stem + '.gz', stem):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise FileNotFoundError(f'{folder}/{stem}[.gz]')


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 7)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(64, 128, 5)
        self.conv3 = nn.Conv2d(128, 256, 5)
        self.linear1 = nn.Linear(2304, 512)
        self.linear2 = nn.Linear(512, 2)

    def forward(self, data):
        res = []
        for i in range(2):
            x = data[i]
            x = self.conv1(x)
            x = F.relu(x)
            x = self.pool1(x)
            x = self.conv2(x)
            x = F.relu(x)
            x = self.conv3(x)
            x = F.relu(x)
            x = x.view(x.shape[0], -1)
            x = self.linear1(x)
            res.append(F.relu(x))
        res = torch.abs(res[1] - res[0])
        return self.linear2(res)


def embed(net, x):
    """Net.forward's tower (its layers, in its order) over one batch: linear1's output after ReLU."""
    x = F.relu(net.conv3(F.relu(net.conv2(net.pool1(F.relu(net.conv1(x)))))))
    return F.relu(net.linear1(x.reshape(x.shape[0], -1)))  # reshape: a view unless channels_last


def head(net, e1, e2):
    """Net.forward's head on two sides' embeddings."""
    return net.linear2(torch.abs(e2 - e1))


def normalise(images):
    return ((torch.from_numpy(np.ascontiguousarray(images)).float() / 255.0) - 0.1307) / 0.3081


def reference_triplets(labels):
    by_class = [np.nonzero(labels == c)[0] for c in range(10)]
    triplets = []
    for i in range(10):
        for j in range(500):
            rnd_cls = random.randint(0, 8)
            if rnd_cls >= i:
                rnd_cls += 1
            rnd_dist = random.randint(0, 100)
            triplets.append((by_class[i][j], by_class[i][j + rnd_dist], by_class[rnd_cls][j]))
    return np.array(triplets, dtype=np.int64)


def evaluate(model, test_images, pairs, device):
    model.eval()
    correct = 0
    loss_sum = 0.0
    left = np.array(pairs['left'], dtype=np.int64)
    right = np.array(pairs['right'], dtype=np.int64)
    same = torch.tensor(pairs['same'], dtype=torch.long, device=device)
    started = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(left), 256):
            a = normalise(test_images[left[s:s + 256]]).unsqueeze(1).to(device)
            b = normalise(test_images[right[s:s + 256]]).unsqueeze(1).to(device)
            out = model([a, b])
            loss_sum += F.cross_entropy(out, same[s:s + 256], reduction='sum').item()
            correct += (out.argmax(1) == same[s:s + 256]).sum().item()
    seconds = time.perf_counter() - started
    model.train()
    return correct / len(left), loss_sum / len(left), len(left) / seconds


def make_optimizer(model):
    return torch.optim.Adam(model.parameters(), lr=0.001, weight_decay=0.0001)


def images_batch(images, indices, device, channels_last):
    x = normalise(images[indices]).unsqueeze(1).to(device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def batched_step(model, optimizer, images, t, device, channels_last, bf16):
    """One training step as siamese-torch takes it: one forward of anchors, positives and
    negatives, the recipe's loss (on fp32 logits), Adam."""
    b = len(t)
    x = images_batch(images, np.concatenate([t[:, 0], t[:, 1], t[:, 2]]), device, channels_last)
    with autocast(bf16, device.type):
        e = embed(model, x)
        same, different = head(model, e[:b], e[b:2 * b]), head(model, e[:b], e[2 * b:])
    loss = (F.cross_entropy(same.float(), torch.ones(b, dtype=torch.long, device=device)) +
            F.cross_entropy(different.float(), torch.zeros(b, dtype=torch.long, device=device)))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def evaluate_batched(model, test_images, pairs, device, channels_last, bf16):
    """The test pairs, each image they use embedded once (as siamese-torch's evaluate does), then
    the head on the pairs; in the training precision. One untimed batch first: oneDNN builds its
    inference primitives, and siamese-torch's evaluation is measured warm too."""
    model.eval()
    left = np.array(pairs['left'], dtype=np.int64)
    right = np.array(pairs['right'], dtype=np.int64)
    same = torch.tensor(pairs['same'], dtype=torch.long, device=device)
    used, inverse = np.unique(np.concatenate([left, right]), return_inverse=True)
    inverse = torch.from_numpy(inverse).to(device)
    with torch.inference_mode(), autocast(bf16, device.type):
        embed(model, images_batch(test_images, used[:256], device, channels_last))
        started = time.perf_counter()
        e = torch.cat([embed(model, images_batch(test_images, used[s:s + 256], device, channels_last))
                       for s in range(0, len(used), 256)])
        out = head(model, e[inverse[:len(left)]], e[inverse[len(left):]]).float()
        loss_sum = F.cross_entropy(out, same, reduction='sum').item()
        correct = (out.argmax(1) == same).sum().item()
    seconds = time.perf_counter() - started
    model.train()
    return correct / len(left), loss_sum / len(left), len(left) / seconds


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--data', required=True)
    p.add_argument('--pairs', required=True)
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--max-batches', type=int, default=0)
    p.add_argument('--out')
    p.add_argument('--device', default='cpu')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--batched', action='store_true', help='one forward of the 3 x batch images a step (not the recipe\'s 4 passes)')
    p.add_argument('--memory-format', choices=['auto', 'contiguous', 'channels_last'],
                   help='with --batched (default auto: probed); the recipe\'s mode is contiguous')
    p.add_argument('--precision', choices=['fp32', 'bf16'], default='fp32', help='bf16: autocast (CPU or CUDA), fp32 weights')
    args = p.parse_args()
    if args.memory_format not in (None, 'contiguous') and not args.batched:
        p.error('--memory-format auto and channels_last go with --batched')
    bf16 = args.precision == 'bf16'
    if bf16 and args.device != 'cpu':
        if not args.batched:
            p.error('--precision bf16 goes with --batched')
        if not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
            raise SystemExit('--precision bf16 refused: no CUDA device that computes bfloat16')
    elif bf16:
        require_bf16()

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    train_images = read_idx(find(args.data, 'train-images-idx3-ubyte'))
    train_labels = read_idx(find(args.data, 'train-labels-idx1-ubyte'))
    test_images = read_idx(find(args.data, 't10k-images-idx3-ubyte'))
    with open(args.pairs) as f:
        pairs = json.load(f)

    triplets = reference_triplets(train_labels)
    device = torch.device(args.device)
    model = Net().to(device)
    probe = None
    channels_last = args.memory_format == 'channels_last'
    if args.batched and args.memory_format in (None, 'auto'):
        first = triplets[:args.batch_size]
        probe = probe_memory_format(model, make_optimizer, lambda m, opt, cl: batched_step(
            m, opt, train_images, first, device, cl, bf16).item())
        channels_last = probe['channels_last'] < probe['contiguous']
    if args.batched:
        to_format(model, channels_last)
    optimizer = make_optimizer(model)
    history = []
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        order = torch.randperm(len(triplets)).numpy()
        loss_sum, batches, pairs_done = 0.0, 0, 0
        for s in range(0, len(order), args.batch_size):
            if args.max_batches and batches >= args.max_batches:
                break
            t = triplets[order[s:s + args.batch_size]]
            if args.batched:
                loss = batched_step(model, optimizer, train_images, t, device, channels_last, bf16)
            else:
                a = normalise(train_images[t[:, 0]]).unsqueeze(1).to(device)
                pos = normalise(train_images[t[:, 1]]).unsqueeze(1).to(device)
                neg = normalise(train_images[t[:, 2]]).unsqueeze(1).to(device)
                target_pos = torch.ones(len(t), dtype=torch.long, device=device)
                target_neg = torch.zeros(len(t), dtype=torch.long, device=device)
                optimizer.zero_grad()
                loss = F.cross_entropy(model([a, pos]), target_pos) + F.cross_entropy(model([a, neg]), target_neg)
                loss.backward()
                optimizer.step()
            loss_sum += loss.item()  # synchronises with the GPU every step, as the original does
            batches += 1
            pairs_done += 2 * len(t)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        train_seconds = time.perf_counter() - started
        if args.batched:
            accuracy, test_loss, eval_pairs_per_second = evaluate_batched(model, test_images, pairs, device, channels_last, bf16)
        else:
            accuracy, test_loss, eval_pairs_per_second = evaluate(model, test_images, pairs, device)
        row = {'epoch': epoch, 'trainLoss': loss_sum / max(batches, 1), 'testLoss': test_loss, 'testAccuracy': accuracy,
               'trainSeconds': train_seconds, 'pairsPerSecond': pairs_done / train_seconds,
               'evalPairsPerSecond': eval_pairs_per_second, 'evalPrecision': args.precision}
        history.append(row)
        print(json.dumps(row), flush=True)
    summary = {'tool': 'pytorch', 'torch': torch.__version__, 'threads': args.threads, 'device': args.device,
               'batchSize': args.batch_size, 'history': history,
               'maxRssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               # How it ran: the recipe's 4 passes a triplet or one batched forward; the memory
               # format (and the probe's seconds per step); the precision, of training and of each
               # epoch's evaluation; and the BLAS, malloc and kernel level really loaded.
               'batched': args.batched, 'memoryFormat': 'channels_last' if channels_last else 'contiguous',
               'memoryFormatProbeSecondsPerStep': probe, 'precision': args.precision, 'evalSamePrecision': True,
               **runtime_report()}
    print(json.dumps(summary), flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(summary, f, indent=2)


if __name__ == '__main__':
    sys.exit(main())
