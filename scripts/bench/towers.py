#!/usr/bin/env python3
"""The PyTorch side of the tower benchmark: siamese-torch's 'conv4' and 'resnet18' towers trained
with the pair-ce head, written to give the competitor its best CPU showing.

The towers (the same layouts and parameter names as siamese-torch's, so that its model files load
here; test/interop/torchvision_tool.py imports them from this file):
  conv4     four blocks of Conv2d(in, 64, 3, padding=1) with bias, BatchNorm2d(64), ReLU,
            MaxPool2d(2), named layer1.conv, layer1.bn ... layer4.bn; flatten (C, H, W order);
            fc = Linear(64 * (H // 16) * (W // 16), E), no ReLU.
  resnet18  torchvision.models.resnet18(num_classes=E): its fc is the embedding layer, no ReLU;
            conv1 takes C input channels.
The head: linear2 = Linear(E, 2) on |e1 - e2|, logits (different, same).

Training: the triplets are visited in the file's order, --batch triplets a step; each step is ONE
batched forward of [anchors; positives; negatives] (3B images, so BatchNorm sees all three),
loss = cross_entropy(head(a, p), 1) + cross_entropy(head(a, n), 0), Adam (lr 1e-3, weight decay
1e-4). A step includes gathering the uint8 pixels and normalising them. The first --warmup steps
(3) run untimed; the steps after them, up to --max-batches steps in all, are timed;
train_pairs_per_second counts 2 labelled pairs per triplet.
Evaluation (once untimed, to warm up, then timed): eval mode, inference_mode, every image the
pairs use embedded once in batches of 256, then the head on the pairs; eval_pairs_per_second = pairs / (embedding time + head time). With
--eval-optimized, the same again with the tower traced and torch.jit.optimize_for_inference'd
(BatchNorm folded, oneDNN layouts), reported apart as eval_optimized_* (compile time apart).
Memory format: --memory-format auto (the default) trains a throw-away copy of the model a few
steps in each of contiguous and channels_last on the first batch and keeps the faster (model and
inputs); the choice and the probe's timings are in the output.
Precision: --precision bf16 runs the forward of training, of the probe and of the eager evaluation
under torch.autocast('cpu', bfloat16), the loss on fp32 logits, fp32 weights and Adam state; it is
refused where the CPU lacks avx512_bf16 and amx_bf16. --eval-optimized stays fp32. Whether the CPU
and this torch could use bf16 is reported either way, with the BLAS and malloc really loaded.

Files: PIXELS.bin uint8, HWC interleaved, image after image (count x height x width x channels
bytes); LABELS.bin int32 (count); TRIPLETS.bin int32 (anchor, positive, negative) in visit order;
PAIRS.bin int32 (left, right). All little-endian.

Usage: towers.py --tower conv4|resnet18 --data PIXELS.bin --labels LABELS.bin --count N
                 [--width 64] [--height 64] [--channels 3] [--embedding 128]
                 --triplets TRIPLETS.bin [--batch 64] [--threads 2] [--max-batches B] [--warmup 3]
                 --eval-pairs PAIRS.bin [--memory-format auto|contiguous|channels_last]
                 [--mean 0.485,0.456,0.406] [--std 0.229,0.224,0.225] [--seed 0] [--eval-optimized]
                 [--precision fp32|bf16] [--out result.json]
Prints one JSON line (the result) last.
"""
import argparse
import copy
import platform
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from torch_env import autocast, bf16_report, probe_memory_format, require_bf16, runtime_report, to_format, write_result


# ---- the towers and the head (shared with test/interop/torchvision_tool.py) ----

class Conv4Block(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 64, 3, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(64)

    def forward(self, x):
        # ReLU in place on BatchNorm's output (its backward does not need it), as torchvision does.
        return F.max_pool2d(F.relu(self.bn(self.conv(x)), inplace=True), 2)


class Conv4(nn.Module):
    """siamese-torch's 'conv4' tower: four conv-BN-ReLU-pool blocks, then fc (no ReLU)."""

    def __init__(self, channels, width, height, embedding):
        super().__init__()
        self.layer1 = Conv4Block(channels)
        self.layer2 = Conv4Block(64)
        self.layer3 = Conv4Block(64)
        self.layer4 = Conv4Block(64)
        self.fc = nn.Linear(64 * (height // 16) * (width // 16), embedding)

    def forward(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(x, 1))


def make_resnet18(channels, embedding):
    """torchvision's resnet18 with fc = Linear(512, embedding) and conv1 taking `channels` channels."""
    m = torchvision.models.resnet18(num_classes=embedding)
    if channels != 3:
        m.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(m.conv1.weight, mode='fan_out', nonlinearity='relu')
    return m


def make_tower(name, channels, width, height, embedding):
    if name == 'conv4':
        return Conv4(channels, width, height, embedding)
    if name == 'resnet18':
        return make_resnet18(channels, embedding)
    raise ValueError(f'unknown tower {name!r}')


class Siamese(nn.Module):
    """A tower and the pair-ce head, with the parameter names of siamese-torch's files."""

    def __init__(self, tower, embedding):
        super().__init__()
        self.tower = tower
        self.linear2 = nn.Linear(embedding, 2)

    def head(self, e1, e2):
        return self.linear2(torch.abs(e1 - e2))


# ---- data ----

def read_int32(path, per_row=1):
    a = np.fromfile(path, dtype='<i4')
    if per_row > 1:
        if a.size % per_row:
            raise ValueError(f'{path}: {a.size} int32 values, not a multiple of {per_row}')
        a = a.reshape(-1, per_row)
    return a.astype(np.int64)


def floats(text):
    return [float(v) for v in text.split(',')]


class Pixels:
    """All images as one uint8 NHWC tensor; batches gathered, converted and normalised in one go."""

    def __init__(self, path, count, width, height, channels, mean, std):
        raw = np.fromfile(path, dtype=np.uint8)
        need = count * width * height * channels
        if raw.size < need:
            raise ValueError(f'{path}: {raw.size} bytes, {count} images of {height}x{width}x{channels} need {need}')
        self.images = torch.from_numpy(raw[:need].reshape(count, height, width, channels).copy())
        if len(mean) == 1:
            mean = mean * channels
        if len(std) == 1:
            std = std * channels
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f'--mean and --std need 1 or {channels} values')
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self.count = count

    def batch(self, indices, channels_last):
        """NCHW float32 (in channels_last memory format when asked: a free view of NHWC)."""
        x = self.images[indices].float().div_(255.0).sub_(self.mean).div_(self.std)  # N, H, W, C
        x = x.permute(0, 3, 1, 2)  # a channels_last NCHW view
        return x if channels_last else x.clone(memory_format=torch.contiguous_format)


# ---- training and evaluation ----

def train_step(model, optimizer, pixels, t, channels_last, bf16=False):
    b = len(t)
    x = pixels.batch(torch.from_numpy(np.concatenate([t[:, 0], t[:, 1], t[:, 2]])), channels_last)
    with autocast(bf16):
        e = model.tower(x)
        ea, ep, en = e[:b], e[b:2 * b], e[2 * b:]
        same, different = model.head(ea, ep), model.head(ea, en)
    ones = torch.ones(b, dtype=torch.long)
    zeros = torch.zeros(b, dtype=torch.long)
    loss = F.cross_entropy(same.float(), ones) + F.cross_entropy(different.float(), zeros)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def make_optimizer(model):
    return torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)


def embed_all(tower, pixels, channels_last, images=None):
    """Embeddings of `images` (default: every image), in batches of 256, in that order."""
    images = torch.arange(pixels.count) if images is None else images
    chunks = []
    for s in range(0, len(images), 256):
        chunks.append(tower(pixels.batch(images[s:s + 256], channels_last)))
    return torch.cat(chunks)


def evaluate(model, pixels, pairs, labels, channels_last, bf16=False):
    model.eval()
    with torch.inference_mode(), autocast(bf16):
        started = time.perf_counter()
        # The images the pairs use, each embedded once (as siamese-torch's evaluate does).
        used, inverse = np.unique(pairs.reshape(-1), return_inverse=True)
        embeddings = embed_all(model.tower, pixels, channels_last, torch.from_numpy(used))
        embed_seconds = time.perf_counter() - started
        started = time.perf_counter()
        inverse = torch.from_numpy(inverse.reshape(-1, 2))
        left = inverse[:, 0]
        right = inverse[:, 1]
        logits = model.head(embeddings[left], embeddings[right]).float()
        p_same = torch.softmax(logits, dim=1)[:, 1]
        head_seconds = time.perf_counter() - started
    model.train()
    same = torch.from_numpy(labels[pairs[:, 0]] == labels[pairs[:, 1]])
    accuracy = ((p_same > 0.5) == same).double().mean().item()
    result = {
        'eval_pairs': len(pairs),
        'eval_images_embedded': len(used),
        'eval_embed_seconds': embed_seconds,
        'eval_head_seconds': head_seconds,
        'eval_pairs_per_second': len(pairs) / (embed_seconds + head_seconds),
        'eval_images_per_second': len(used) / embed_seconds,
        'eval_accuracy': accuracy,
    }
    return result, embeddings


def evaluate_optimized(model, pixels, pairs, channels_last, eager_embeddings):
    """Evaluation again with the tower traced, frozen and optimised for inference by TorchScript
    (BatchNorm folded into the convolutions, oneDNN layouts): PyTorch's own best for inference on
    CPU, without leaving the process. Compiling and one warm-up batch are timed apart."""
    tower = copy.deepcopy(model.tower).eval()
    example = pixels.batch(torch.arange(min(256, pixels.count)), channels_last)
    started = time.perf_counter()
    with torch.no_grad():
        optimized = torch.jit.optimize_for_inference(torch.jit.trace(tower, example))
    with torch.inference_mode():
        optimized(example)
        compile_seconds = time.perf_counter() - started
        started = time.perf_counter()
        used, inverse = np.unique(pairs.reshape(-1), return_inverse=True)
        embeddings = embed_all(optimized, pixels, channels_last, torch.from_numpy(used))
        embed_seconds = time.perf_counter() - started
        started = time.perf_counter()
        inverse = torch.from_numpy(inverse.reshape(-1, 2))
        logits = model.head(embeddings[inverse[:, 0]], embeddings[inverse[:, 1]])
        torch.softmax(logits, dim=1)
        head_seconds = time.perf_counter() - started
    return {
        'eval_optimized_compile_seconds': compile_seconds,
        'eval_optimized_embed_seconds': embed_seconds,
        'eval_optimized_pairs_per_second': len(pairs) / (embed_seconds + head_seconds),
        'eval_optimized_images_per_second': len(used) / embed_seconds,
        'eval_optimized_max_abs_difference': (embeddings - eager_embeddings).abs().max().item(),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--tower', required=True, choices=['conv4', 'resnet18'])
    p.add_argument('--data', required=True)
    p.add_argument('--labels', required=True)
    p.add_argument('--count', type=int, required=True)
    p.add_argument('--width', type=int, default=64)
    p.add_argument('--height', type=int, default=64)
    p.add_argument('--channels', type=int, default=3)
    p.add_argument('--embedding', type=int, default=128)
    p.add_argument('--triplets', required=True)
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--max-batches', type=int, default=0, help='steps in all, warm-up included (0: every triplet)')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--eval-pairs', required=True)
    p.add_argument('--memory-format', default='auto', choices=['auto', 'contiguous', 'channels_last'])
    p.add_argument('--mean', type=floats, default=[0.485, 0.456, 0.406])
    p.add_argument('--std', type=floats, default=[0.229, 0.224, 0.225])
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--eval-optimized', action='store_true',
                   help='also evaluate with torch.jit.optimize_for_inference (reported apart; in fp32)')
    p.add_argument('--precision', choices=['fp32', 'bf16'], default='fp32',
                   help='bf16: autocast on the CPU for training and evaluation, fp32 weights')
    p.add_argument('--out')
    args = p.parse_args()
    bf16 = args.precision == 'bf16'
    if bf16:
        require_bf16()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    pixels = Pixels(args.data, args.count, args.width, args.height, args.channels, args.mean, args.std)
    labels = read_int32(args.labels)[:args.count]
    triplets = read_int32(args.triplets, 3)
    pairs = read_int32(args.eval_pairs, 2)
    for name, a in (('triplets', triplets), ('eval pairs', pairs)):
        if a.size and (a.min() < 0 or a.max() >= args.count):
            raise ValueError(f'{name}: an index is outside 0..{args.count - 1}')

    model = Siamese(make_tower(args.tower, args.channels, args.width, args.height, args.embedding), args.embedding)
    model.train()
    steps = (len(triplets) + args.batch - 1) // args.batch
    if args.max_batches:
        steps = min(steps, args.max_batches)
    if steps <= args.warmup:
        raise ValueError(f'{steps} steps leave none to time after {args.warmup} warm-up steps')

    probe = None
    if args.memory_format == 'auto':
        first = triplets[:args.batch]
        probe = probe_memory_format(model, make_optimizer, lambda m, opt, cl: train_step(m, opt, pixels, first, cl, bf16))
        channels_last = probe['channels_last'] < probe['contiguous']
    else:
        channels_last = args.memory_format == 'channels_last'
    to_format(model, channels_last)
    optimizer = make_optimizer(model)

    losses = []
    timed_started = None
    for step in range(steps):
        if step == args.warmup:
            timed_started = time.perf_counter()
        t = triplets[step * args.batch:(step + 1) * args.batch]
        losses.append(train_step(model, optimizer, pixels, t, channels_last, bf16))
    train_seconds = time.perf_counter() - timed_started
    timed_triplets = min(len(triplets), steps * args.batch) - args.warmup * args.batch

    result = {
        'tool': 'pytorch',
        'tower': args.tower,
        'torch': torch.__version__,
        'torchvision': torchvision.__version__,
        'python': platform.python_version(),
        'threads': args.threads,
        'input': [args.channels, args.height, args.width],
        'embedding': args.embedding,
        'batch': args.batch,
        'memory_format': 'channels_last' if channels_last else 'contiguous',
        'memory_format_probe_seconds_per_step': probe,
        'precision': args.precision,
        'warmup_steps': args.warmup,
        'timed_steps': steps - args.warmup,
        'train_seconds': train_seconds,
        'train_seconds_per_step': train_seconds / (steps - args.warmup),
        'train_pairs_per_second': 2 * timed_triplets / train_seconds,
        'train_images_per_second': 3 * timed_triplets / train_seconds,
        'first_loss': losses[0],
        'last_loss': losses[-1],
    }
    # One untimed evaluation first (oneDNN builds its inference primitives), then the timed one:
    # both tools are measured warm.
    evaluate(model, pixels, pairs, labels, channels_last, bf16)
    evaluation, embeddings = evaluate(model, pixels, pairs, labels, channels_last, bf16)
    result.update(evaluation)
    # Peak RSS of training and eager evaluation (with --memory-format auto it includes the probe's
    # throw-away model; name the format to leave it out).
    result['peak_rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.eval_optimized:
        # TorchScript's inference path, traced from the fp32 weights whatever --precision says.
        result.update(evaluate_optimized(model, pixels, pairs, channels_last, embeddings))
        result['eval_optimized_precision'] = 'fp32'
    result['eval_precision'] = args.precision
    result['bf16'] = bf16_report()
    result.update(runtime_report())
    write_result(result, args.out)


if __name__ == '__main__':
    sys.exit(main())
