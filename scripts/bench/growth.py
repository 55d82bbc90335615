#!/usr/bin/env python3
"""The PyTorch side of the growth benchmark (scripts/bench/growth.mjs): one point of one curve, in a
fresh process, measured the way growth.mjs measures siamese-torch.

The networks and the batches are those of the other bench scripts, imported from them, so that a
change there changes this too:
  reference  reference.py's Net (the recipe's tower at 28x28 and its head), trained as
             reference.py --batched trains it: one forward of the step's anchors, positives and
             negatives, the head on |p - a| and |n - a|, the recipe's loss, Adam; evaluated by its
             evaluate_batched (each test image embedded once, one untimed batch first).
  conv4      towers.py's conv4 tower and pair-ce head (grey here, any square size), trained by its
             train_step (one batched forward, Pixels' gather and normalisation) and evaluated by
             its evaluate, after one untimed batch.
Pairs: 'reference' is reference.py's reference_triplets (500 anchors a class, drawn once, before
the first epoch, as siamese-torch draws them); 'balanced' is the library's default scheme (every
image an anchor once an epoch, a positive of its class other than itself, a negative of another
class), drawn here with numpy at the start of the epoch, as siamese-torch draws it at the start of
each epoch. The fixed test pairs are the balanced scheme on the test split (two pairs a test image).

What one run measures (the names are those of growth.mjs's child, so the driver reads both alike):
  loadSeconds        reading the pixel and label files (not a cost of training; reported apart);
  setupSeconds       from the data in memory to the first epoch's start: the pixels wrapped as a
                     tensor (conv4; a view, no copy), the model built, the memory format applied,
                     the optimiser, the reference scheme's triplets; the memory-format probe is
                     left out (it is this benchmark's choice of PyTorch's best, not a cost a user
                     pays);
  pairGenSeconds     drawing one epoch's triplets (inside the epoch for 'balanced');
  stepSeconds        the steady-state step: the time of steps warmup+1 .. warmup+steps (with
                     --full-epoch, every step after the warm-up but a short last one), divided by
                     their number; startSeconds, the epoch's time before them beyond steady steps
                     (the epoch's pair drawing and order, and the warm-up steps' extra time);
  epochSeconds       with --full-epoch: every step of the epoch and its evaluation (as siamese-torch's
                     EpochMetrics.seconds);
  evalSeconds        with --evaluate (or --full-epoch): the fixed test pairs, warm (one untimed batch);
  peakRssMiB         the process's peak resident memory (VmHWM), reset after the probe where the
                     kernel allows it (/proc/self/clear_refs), so that the probe's copy of the model
                     does not count.
With --mode predict: the reference network, untrained, in eval mode; each call takes N pairs of
28x28 images as uint8 arrays and returns N probabilities as a Python list: one forward of the 2N
images (inference_mode), the head, softmax. latencySeconds: the median call after --warmup calls.

Files: PIXELS.bin uint8, image after image (count x size x size), LABELS.bin int32 little-endian;
each run reads the first --train-count / --test-count images of its files.

Usage: growth.py --mode train|predict --tower reference|conv4 --size 28
                 --train-pixels F --train-labels F --train-count N --test-pixels F --test-labels F --test-count N
                 [--scheme balanced|reference] [--batch 64] [--warmup 3] [--steps 20] [--full-epoch] [--evaluate]
                 [--embedding 512] [--threads 2] [--seed 0] [--memory-format auto|contiguous|channels_last]
                 [--probe-steps 1] [--pairs-per-call N] [--calls K]
Prints one JSON line, the result, last.
"""
import argparse
import math
import random
import resource
import statistics
import sys
import time
import types

import numpy as np
import torch

import reference as ref
from torch_env import probe_memory_format, runtime_report, to_format, write_result

# MNIST's normalisation, siamese-torch's default and reference.py's.
MEAN = 0.1307
STD = 0.3081


# ---- data ----

def read_images(path, count, size):
    """The first `count` images of a uint8 pixel file, as a (count, size, size) array."""
    need = count * size * size
    raw = np.fromfile(path, dtype=np.uint8, count=need)
    if raw.size < need:
        raise ValueError(f'{path}: {raw.size} bytes, {count} images of {size}x{size} need {need}')
    return raw.reshape(count, size, size)


def read_labels(path, count):
    labels = np.fromfile(path, dtype='<i4', count=count)
    if labels.size < count:
        raise ValueError(f'{path}: {labels.size} labels, {count} wanted')
    return labels.astype(np.int64)


def balanced_triplets(labels, rng):
    """The balanced scheme, vectorised: every image of a class with two or more images is an anchor
    once, in a shuffled order; its positive another image of its class (never itself), drawn
    uniformly; its negative an image, drawn uniformly, of a class drawn uniformly among the others.
    Returns an (n, 3) int64 array of (anchor, positive, negative)."""
    classes = int(labels.max()) + 1
    by_class = np.argsort(labels, kind='stable')  # image indices grouped by class
    counts = np.bincount(labels, minlength=classes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(labels), dtype=np.int64)  # each image's place within its class
    rank[by_class] = np.arange(len(labels)) - np.repeat(starts, counts)
    anchors = rng.permutation(np.nonzero(counts[labels] >= 2)[0])
    c = labels[anchors]
    # A positive: one of the other n - 1 images of the class, skipping the anchor's own place.
    r = (rng.random(len(anchors)) * (counts[c] - 1)).astype(np.int64)
    positives = by_class[starts[c] + r + (r >= rank[anchors])]
    # A negative: a uniformly drawn class among those with images, other than the anchor's.
    present = np.nonzero(counts > 0)[0]
    place = np.searchsorted(present, c)
    k = (rng.random(len(anchors)) * (len(present) - 1)).astype(np.int64)
    other = present[k + (k >= place)]
    negatives = by_class[starts[other] + (rng.random(len(anchors)) * counts[other]).astype(np.int64)]
    return np.stack([anchors, positives, negatives], axis=1)


def test_pairs(labels, seed):
    """The fixed test pairs: the balanced scheme on the test split, two pairs a triplet."""
    t = balanced_triplets(labels, np.random.default_rng(seed))
    return {'left': np.concatenate([t[:, 0], t[:, 0]]), 'right': np.concatenate([t[:, 1], t[:, 2]]),
            'same': np.concatenate([np.ones(len(t), dtype=np.int64), np.zeros(len(t), dtype=np.int64)])}


# ---- peak memory ----

def reset_peak_rss():
    """Resets the kernel's high-water mark of this process's resident memory (Linux 4.0 and later).
    False where that is not allowed: the peak then includes what came before."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_rss_mib():
    """VmHWM, the peak resident memory of this process's own address space; getrusage's ru_maxrss
    can carry the peak of the process that forked it, before exec."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- the two networks ----

class ArrayPixels:
    """towers.py's Pixels over grey images already in memory: its own batch() (the gather, the
    conversion to float, the normalisation, the memory format), without reading a file again."""

    def __init__(self, images):
        # Imported here: towers.py imports torchvision, whose import would add to the peak memory
        # of the reference network's runs, which do not use it.
        import towers
        self.images = torch.from_numpy(images).unsqueeze(3)  # N, H, W, C with C = 1: a view, no copy
        self.mean = torch.tensor([MEAN])
        self.std = torch.tensor([STD])
        self.count = len(images)
        self.batch = types.MethodType(towers.Pixels.batch, self)


class Reference:
    """reference.py's network, batches, optimiser and evaluation."""

    def __init__(self, args, train_images, test_images):
        if args.size != 28:
            raise SystemExit(f'the reference network is the recipe\'s 28x28 one (its linear1 takes 2304 values), not {args.size}')
        self.train_images = train_images
        self.test_images = test_images
        self.model = ref.Net()
        self.make_optimizer = ref.make_optimizer

    def step(self, model, optimizer, t, channels_last):
        return ref.batched_step(model, optimizer, self.train_images, t, torch.device('cpu'), channels_last, False).item()

    def warm_and_evaluate(self, model, pairs, labels, channels_last):
        """reference.py's evaluate_batched (it runs one untimed batch first); its seconds."""
        _, _, pairs_per_second = ref.evaluate_batched(model, self.test_images, pairs, torch.device('cpu'), channels_last, False)
        return len(pairs['left']) / pairs_per_second

    def embed(self, model, images, channels_last):
        x = ref.normalise(images).unsqueeze(1)
        return ref.embed(model, x.contiguous(memory_format=torch.channels_last) if channels_last else x)

    def head(self, model, e1, e2):
        return ref.head(model, e1, e2)


class Conv4:
    """towers.py's conv4 tower and head, grey, at any square size."""

    def __init__(self, args, train_images, test_images):
        import towers
        self.towers = towers
        self.train = ArrayPixels(train_images)
        self.test = ArrayPixels(test_images)
        self.model = towers.Siamese(towers.make_tower('conv4', 1, args.size, args.size, args.embedding), args.embedding)
        self.make_optimizer = towers.make_optimizer

    def step(self, model, optimizer, t, channels_last):
        return self.towers.train_step(model, optimizer, self.train, t, channels_last)

    def warm_and_evaluate(self, model, pairs, labels, channels_last):
        """One untimed batch (oneDNN builds its inference primitives), then towers.py's evaluate."""
        model.eval()
        with torch.inference_mode():
            model.tower(self.test.batch(torch.arange(min(64, self.test.count)), channels_last))
        model.train()
        left_right = np.stack([pairs['left'], pairs['right']], axis=1)
        result, _ = self.towers.evaluate(model, self.test, left_right, labels, channels_last)
        return result['eval_embed_seconds'] + result['eval_head_seconds']


# ---- one run ----

def train_run(args, net, train_labels, test_labels, build_seconds):
    """Set-up, one epoch's steps (all of them, or the warm-up and timed steps), evaluation.
    `build_seconds`: the time the network took to build (with its data wrapped), part of the set-up."""
    result = {}
    model = net.model
    model.train()
    # The memory format: probed on a throw-away copy (not counted in the set-up), or as asked.
    probe = None
    if args.memory_format == 'auto':
        first = balanced_triplets(train_labels, np.random.default_rng(args.seed + 1))[:args.batch]
        probe = probe_memory_format(model, net.make_optimizer, lambda m, opt, cl: net.step(m, opt, first, cl),
                                    steps=args.probe_steps)
        channels_last = probe['channels_last'] < probe['contiguous']
    else:
        channels_last = args.memory_format == 'channels_last'
    # From here the peak is the run's own. The probe's buffers, freed, stay in the heap (the tuned
    # malloc keeps them) and are what the run's first steps take again.
    result['peakRssReset'] = reset_peak_rss()
    started = time.perf_counter()
    to_format(model, channels_last)
    optimizer = net.make_optimizer(model)
    pair_gen_seconds = None
    if args.scheme == 'reference':
        # Drawn once, before the first epoch, as siamese-torch's trainer draws them.
        t0 = time.perf_counter()
        triplets = ref.reference_triplets(train_labels)
        pair_gen_seconds = time.perf_counter() - t0
    setup_seconds = build_seconds + time.perf_counter() - started

    # The epoch: its triplets (the balanced scheme's are fresh every epoch), a random order, steps.
    epoch_started = time.perf_counter()
    if args.scheme == 'balanced':
        t0 = time.perf_counter()
        triplets = balanced_triplets(train_labels, np.random.default_rng(args.seed))
        pair_gen_seconds = time.perf_counter() - t0
    order = torch.randperm(len(triplets)).numpy()
    batches = math.ceil(len(triplets) / args.batch)
    # The steady state: the steps after the warm-up (every one with --full-epoch), never the
    # epoch's last when it is short.
    last = batches if args.full_epoch else args.warmup + args.steps
    if last == batches and len(triplets) % args.batch:
        last -= 1
    if args.warmup < 1 or last <= args.warmup or last > batches:
        raise SystemExit(f'{args.warmup} warm-up and {args.steps} timed steps do not fit an epoch of {batches} '
                         '(and one warm-up step at least is needed)')
    ends = []  # seconds from the epoch's start to the end of each step
    for b in range(batches if args.full_epoch else last):
        net.step(model, optimizer, triplets[order[b * args.batch:(b + 1) * args.batch]], channels_last)
        ends.append(time.perf_counter() - epoch_started)
    step_seconds = (ends[last - 1] - ends[args.warmup - 1]) / (last - args.warmup)
    result.update({
        'setupSeconds': setup_seconds,
        'pairGenSeconds': pair_gen_seconds,
        'triplets': len(triplets),
        'batches': batches,
        'stepSeconds': step_seconds,
        'timedSteps': last - args.warmup,
        'startSeconds': ends[args.warmup - 1] - args.warmup * step_seconds,
        'memoryFormat': 'channels_last' if channels_last else 'contiguous',
        'memoryFormatProbeSecondsPerStep': probe,
    })
    if args.full_epoch or args.evaluate:
        pairs = test_pairs(test_labels, 0)
        result['evalSeconds'] = net.warm_and_evaluate(model, pairs, test_labels, channels_last)
        result['evalPairs'] = len(pairs['left'])
    if args.full_epoch:
        result['epochSeconds'] = ends[-1] + result['evalSeconds']
    return result


def predict_run(args, net, labels):
    """--calls calls of --pairs-per-call pairs each, after --warmup calls; the median latency."""
    model = net.model
    probe = None
    if args.memory_format == 'auto':
        # The format the network trains faster in, as reference.py evaluates in its training format.
        model.train()
        first = balanced_triplets(labels, np.random.default_rng(args.seed + 1))[:64]
        probe = probe_memory_format(model, net.make_optimizer, lambda m, opt, cl: net.step(m, opt, first, cl),
                                    steps=args.probe_steps)
        channels_last = probe['channels_last'] < probe['contiguous']
    else:
        channels_last = args.memory_format == 'channels_last'
    model.eval()
    to_format(model, channels_last)
    reset = reset_peak_rss()
    n = args.pairs_per_call
    images = net.test_images
    # The pairs' images, as a caller holds them: uint8 arrays, left and right.
    left = np.ascontiguousarray(images[np.arange(n) % len(images)])
    right = np.ascontiguousarray(images[(np.arange(n) + len(images) // 2) % len(images)])

    def call():
        with torch.inference_mode():
            e = net.embed(model, np.concatenate([left, right]), channels_last)
            return torch.softmax(net.head(model, e[:n], e[n:]), dim=1)[:, 1].tolist()

    for _ in range(args.warmup):
        call()
    latencies = []
    for _ in range(args.calls):
        t0 = time.perf_counter()
        p = call()
        latencies.append(time.perf_counter() - t0)
    if len(p) != n:
        raise RuntimeError(f'{len(p)} probabilities for {n} pairs')
    return {'latencySeconds': statistics.median(latencies), 'meanLatencySeconds': statistics.fmean(latencies),
            'calls': args.calls, 'pairsPerCall': n, 'memoryFormat': 'channels_last' if channels_last else 'contiguous',
            'memoryFormatProbeSecondsPerStep': probe, 'peakRssReset': reset}


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--mode', choices=['train', 'predict'], default='train')
    p.add_argument('--tower', choices=['reference', 'conv4'], default='reference')
    p.add_argument('--size', type=int, default=28)
    p.add_argument('--train-pixels')
    p.add_argument('--train-labels')
    p.add_argument('--train-count', type=int, default=0)
    p.add_argument('--test-pixels', required=True)
    p.add_argument('--test-labels', required=True)
    p.add_argument('--test-count', type=int, required=True)
    p.add_argument('--scheme', choices=['balanced', 'reference'], default='balanced')
    p.add_argument('--batch', type=int, default=64, help='triplets a step')
    p.add_argument('--warmup', type=int, default=3, help='untimed steps (predict: untimed calls)')
    p.add_argument('--steps', type=int, default=20, help='timed steps')
    p.add_argument('--full-epoch', action='store_true', help='every step of the epoch, then its evaluation')
    p.add_argument('--evaluate', action='store_true', help='evaluate the fixed test pairs after the steps')
    p.add_argument('--embedding', type=int, default=512, help='conv4: the embedding size (the reference tower\'s is 512)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--memory-format', choices=['auto', 'contiguous', 'channels_last'], default='auto')
    p.add_argument('--probe-steps', type=int, default=1, help='timed probe steps in each format (after one warm-up step)')
    p.add_argument('--pairs-per-call', type=int, default=1)
    p.add_argument('--calls', type=int, default=20)
    args = p.parse_args()
    if args.mode == 'predict' and args.tower != 'reference':
        p.error('--mode predict runs the reference network')
    if args.mode == 'train' and not (args.train_pixels and args.train_labels and args.train_count):
        p.error('--mode train needs --train-pixels, --train-labels and --train-count')

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    test_images = read_images(args.test_pixels, args.test_count, args.size)
    test_labels = read_labels(args.test_labels, args.test_count)
    if args.mode == 'train':
        train_images = read_images(args.train_pixels, args.train_count, args.size)
        train_labels = read_labels(args.train_labels, args.train_count)
    else:
        # Predicting needs no training set; the memory-format probe trains a copy on the test images.
        train_images, train_labels = test_images, test_labels
    load_seconds = time.perf_counter() - started

    started = time.perf_counter()
    net = (Reference if args.tower == 'reference' else Conv4)(args, train_images, test_images)
    build_seconds = time.perf_counter() - started
    result = {'tool': 'pytorch', 'torch': torch.__version__, 'mode': args.mode, 'tower': args.tower, 'size': args.size,
              'threads': args.threads, 'loadSeconds': load_seconds}
    if args.mode == 'train':
        result.update({'scheme': args.scheme, 'batch': args.batch, 'trainCount': args.train_count, 'testCount': args.test_count})
        result.update(train_run(args, net, train_labels, test_labels, build_seconds))
    else:
        result.update(predict_run(args, net, train_labels))
    result['peakRssMiB'] = peak_rss_mib()
    result.update(runtime_report())
    write_result(result, None)


if __name__ == '__main__':
    sys.exit(main())
