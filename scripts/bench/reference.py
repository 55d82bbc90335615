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

Usage: reference.py --data DIR --pairs PAIRS.json [--epochs 10] [--threads 1] [--seed 0]
                    [--out result.json] [--max-batches N]
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
    args = p.parse_args()

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
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001, weight_decay=0.0001)
    history = []
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        order = torch.randperm(len(triplets)).numpy()
        loss_sum, batches, pairs_done = 0.0, 0, 0
        for s in range(0, len(order), args.batch_size):
            if args.max_batches and batches >= args.max_batches:
                break
            t = triplets[order[s:s + args.batch_size]]
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
        accuracy, test_loss, eval_pairs_per_second = evaluate(model, test_images, pairs, device)
        row = {'epoch': epoch, 'trainLoss': loss_sum / max(batches, 1), 'testLoss': test_loss, 'testAccuracy': accuracy,
               'trainSeconds': train_seconds, 'pairsPerSecond': pairs_done / train_seconds,
               'evalPairsPerSecond': eval_pairs_per_second}
        history.append(row)
        print(json.dumps(row), flush=True)
    summary = {'tool': 'pytorch', 'torch': torch.__version__, 'threads': args.threads, 'device': args.device,
               'batchSize': args.batch_size, 'history': history,
               'maxRssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(json.dumps(summary), flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(summary, f, indent=2)


if __name__ == '__main__':
    sys.exit(main())
