#!/usr/bin/env python3
"""The PyTorch side of the unseen-classes benchmark: how well a Siamese network trained on some
classes tells apart classes it never saw, next to classes it did see. The Node driver
(scripts/bench/unseen.mjs) writes one folder; this script trains on its triplets, evaluates, and
prints the result.

The folder (every binary file little-endian, no header; N, T, P are counts):
  meta.json               {"width": 28, "height": 28, "channels": 1,
                           "mean": [0.2860], "std": [0.3530],   (one number, or one a channel)
                           "epochs": 2,                          (how many triplets-<e>.bin there are)
                           "embeddingSize": 512,                 (optional; the conv4 tower's E, default 512)
                           "train": {"count": N}, "test": {"count": N}, "seen": {"count": N}}
                          Other keys (class names, seeds, what drew the data...) are ignored.
  train-pixels.bin        uint8 [N, H, W, C]: the training images, one after the other, channels
                          interleaved (grey: N*H*W bytes), as the normalisation expects them: raw 0..255.
  train-labels.bin        int32 [N]: the training images' classes (any int32 ids).
  triplets-<e>.bin        int32 [T, 3] for e = 0, 1 ... epochs-1: epoch e's training triplets
                          (anchor, positive, negative), indices into the training images, in visit
                          order (batch b = rows b*64 .. b*64+63). Drawn by the driver with
                          siamese-torch's own sampler, so both tools train on the same triplets.
  test-pixels.bin         uint8 [N, H, W, C]: images of the UNSEEN classes (none in train).
  test-labels.bin         int32 [N].
  test-pairs.bin          int32 [P, 3]: fixed evaluation triplets (anchor, positive, negative),
                          indices into the test images; each gives one "same" pair (anchor,
                          positive) and one "different" pair (anchor, negative).
  seen-pixels.bin, seen-labels.bin, seen-pairs.bin: the same for held-out (test-split) images of
                          the TRAINED classes.
The labels of the pairs and triplets are checked (positive of the anchor's class, negative not).

Normalisation: x = (pixel / 255 - mean[c]) / std[c].

The towers (imported, not copied):
  reference  reference.py's Net (the recipe's network: conv1..conv3, linear1 + ReLU = the 512-wide
             embedding, linear2 on |e2 - e1| = the pair-ce head). 28x28 grey only. Where
             reference.py runs each image through the tower in its own pass (the original's quirk),
             this script runs [anchors; positives; negatives] through it in ONE batched pass: the
             tower has no BatchNorm, so the result is the same up to rounding, and it is faster
             (checked at start: the batched embedding reproduces Net.forward).
  conv4      towers.py's Conv4 inside its Siamese (head linear2 on |e1 - e2|), embedding E; one
             batched forward of [anchors; positives; negatives] a step (BatchNorm sees all three),
             as towers.py trains; contiguous memory format.
The losses (those of siamese-torch, native/core/evaluate.cc tripletLoss), over a batch of B triplets:
  pair-ce      CE(head(a, p), 1) + CE(head(a, n), 0), each averaged over the batch.
  contrastive  mean(d(a, p)^2) + mean(relu(margin - d(a, n))^2), d = F.pairwise_distance.
  triplet      F.triplet_margin_loss(a, p, n, margin).
Optimiser: Adam, lr 0.001, weight decay 0.0001 (siamese-torch's defaults, lib/contract.ts), batches
of --batch (64) triplets in each epoch file's order, the last batch possibly short. Weights are
initialised by PyTorch's defaults after torch.manual_seed(--seed).

Evaluation of each set (test = unseen classes, seen = trained classes): eval mode, inference mode,
every image of the set embedded once (batches of 256), then
  - N-way K-shot episodes, K = 1 and 5: --episodes episodes, each drawn with a fresh
    numpy.random.default_rng(--seed) per set and per K (so both sets and both K use the same
    seed): --ways distinct classes among those with >= K + 1 images (rng.choice without
    replacement), then for each class, in that order, K + 1 distinct images (rng.choice without
    replacement): the first K are its support, the last its query. One query a class.
    Rule: pair-ce: a query goes to the class with the highest mean P(same) over its K supports,
    P(same) = softmax(head(query, support))[1]; contrastive and triplet: to the class whose
    prototype (the mean of its K support embeddings) is nearest in Euclidean distance.
    accuracy = the mean over episodes of each episode's share of queries right; ci95 = 1.96 x their
    sample standard deviation (ddof 1) / sqrt(episodes).
  - Pair metrics on the fixed pairs: scores P(same) (pair-ce) or -distance (the others); auc = ROC
    AUC by Mann-Whitney, ties half; eer = the equal error rate: the ROC curve (FAR, TAR) over every
    threshold "same iff score >= t", from (0, 0) to (1, 1), interpolated linearly between its
    points to where FAR = 1 - TAR.

Usage: unseen.py --data DIR [--tower reference|conv4] [--loss pair-ce|contrastive|triplet]
                 [--margin 1] [--epochs E (default meta.json's)] [--batch 64] [--lr 0.001]
                 [--weight-decay 0.0001] [--embedding E] [--ways 4] [--episodes 1000]
                 [--threads 2] [--seed 0] [--out result.json]
Prints one line per epoch on stderr and the result, one JSON object, on stdout:
  {"tool": "pytorch", "tower", "loss", "margin", "epochs", "seconds" (training wall time, all
   epochs), "evalSeconds", "trainLoss": [mean batch loss of each epoch], "threads", "torch",
   "embeddingSize", "ways", "episodes",
   "unseen": {"oneShot": {"accuracy", "ci95"}, "fiveShot": {"accuracy", "ci95"}, "auc", "eer",
              "pairs" (labelled pairs scored: 2 a triplet), "classes", "images"}   (the test set),
   "seen": {...the same}}   (the seen set); "margin" is null for pair-ce.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# The towers, imported from the scripts beside this one (they run nothing when imported).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import Net, embed as reference_embed, head as reference_head  # noqa: E402
from torch_env import write_result  # noqa: E402
from towers import Conv4, Pixels, Siamese, embed_all, read_int32  # noqa: E402

LOSSES = ('pair-ce', 'contrastive', 'triplet')


# ---- the models: embed(x) and head(e1, e2), whatever the tower ----

class ReferenceModel(torch.nn.Module):
    """reference.py's Net, its tower run as one batched pass (Net.forward runs it once per side)."""

    def __init__(self):
        super().__init__()
        self.net = Net()

    def embed(self, x):
        # The layers of Net.forward, in its order: the embedding is linear1's output after ReLU.
        return reference_embed(self.net, x)

    def head(self, e1, e2):
        return reference_head(self.net, e1, e2)

    def check_against_forward(self):
        """The batched embedding and head reproduce Net.forward (so this is still the recipe's network)."""
        a, b = torch.randn(3, 1, 28, 28), torch.randn(3, 1, 28, 28)
        with torch.no_grad():
            e = self.embed(torch.cat([a, b]))
            ours = self.head(e[:3], e[3:])
            theirs = self.net([a, b])
        if not torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5):
            raise RuntimeError('the batched reference tower does not reproduce reference.py Net.forward')


class Conv4Model(torch.nn.Module):
    """towers.py's Siamese around its Conv4 tower."""

    def __init__(self, channels, width, height, embedding):
        super().__init__()
        self.siamese = Siamese(Conv4(channels, width, height, embedding), embedding)

    def embed(self, x):
        return self.siamese.tower(x)

    def head(self, e1, e2):
        return self.siamese.head(e1, e2)


def make_model(tower, meta, embedding):
    if tower == 'reference':
        if (meta['channels'], meta['height'], meta['width']) != (1, 28, 28):
            raise ValueError('the reference tower takes 28x28 grey images only')
        model = ReferenceModel()
        model.check_against_forward()
        return model
    return Conv4Model(meta['channels'], meta['width'], meta['height'], embedding)


def batch_loss(model, loss, margin, ea, ep, en):
    if loss == 'pair-ce':
        b = len(ea)
        return (F.cross_entropy(model.head(ea, ep), torch.ones(b, dtype=torch.long)) +
                F.cross_entropy(model.head(ea, en), torch.zeros(b, dtype=torch.long)))
    if loss == 'contrastive':
        d_pos = F.pairwise_distance(ea, ep)
        d_neg = F.pairwise_distance(ea, en)
        return d_pos.pow(2).mean() + F.relu(margin - d_neg).pow(2).mean()
    return F.triplet_margin_loss(ea, ep, en, margin=margin)


# ---- the data ----

class Split:
    """One set of the folder: pixels, labels and (optional) fixed evaluation triplets."""

    def __init__(self, folder, name, meta, with_pairs):
        self.name = name
        self.count = int(meta[name]['count'])
        self.pixels = Pixels(os.path.join(folder, f'{name}-pixels.bin'), self.count, meta['width'], meta['height'],
                             meta['channels'], as_list(meta['mean']), as_list(meta['std']))
        self.labels = read_int32(os.path.join(folder, f'{name}-labels.bin'))
        if len(self.labels) != self.count:
            raise ValueError(f'{name}-labels.bin: {len(self.labels)} labels for {self.count} images')
        self.pairs = read_triplets(os.path.join(folder, f'{name}-pairs.bin'), self) if with_pairs else None


def as_list(value):
    return [float(v) for v in value] if isinstance(value, list) else [float(value)]


def read_triplets(path, split):
    """int32 [T, 3] (anchor, positive, negative) into split's images, their labels checked."""
    t = read_int32(path, 3)
    if t.size == 0:
        raise ValueError(f'{path}: no triplets')
    if t.min() < 0 or t.max() >= split.count:
        raise ValueError(f'{path}: an index is outside 0..{split.count - 1}')
    labels = split.labels
    if np.any(labels[t[:, 0]] != labels[t[:, 1]]) or np.any(labels[t[:, 0]] == labels[t[:, 2]]):
        raise ValueError(f'{path}: a positive of another class than its anchor, or a negative of the same')
    return t


# ---- training ----

def train_epoch(model, optimizer, loss, margin, pixels, triplets, batch):
    model.train()
    losses = []
    for s in range(0, len(triplets), batch):
        t = triplets[s:s + batch]
        b = len(t)
        x = pixels.batch(torch.from_numpy(np.concatenate([t[:, 0], t[:, 1], t[:, 2]])), channels_last=False)
        e = model.embed(x)
        value = batch_loss(model, loss, margin, e[:b], e[b:2 * b], e[2 * b:])
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        losses.append(value.item())
    return float(np.mean(losses))


# ---- evaluation ----

def draw_episodes(labels, ways, shots, episodes, seed):
    """[episodes, ways, shots] support indices and [episodes, ways] query indices (class w of an
    episode at position w)."""
    classes, counts = np.unique(labels, return_counts=True)
    usable = classes[counts >= shots + 1]
    if len(usable) < ways:
        raise ValueError(f'{ways}-way {shots}-shot needs {ways} classes with {shots + 1} images or more; '
                         f'the set has {len(usable)}')
    members = {c: np.nonzero(labels == c)[0] for c in usable}
    rng = np.random.default_rng(seed)
    drawn = np.empty((episodes, ways, shots + 1), dtype=np.int64)
    for e in range(episodes):
        for w, c in enumerate(rng.choice(usable, ways, replace=False)):
            drawn[e, w] = rng.choice(members[c], shots + 1, replace=False)
    return drawn[:, :, :shots], drawn[:, :, shots]


def episode_accuracy(model, loss, embeddings, labels, ways, shots, episodes, seed):
    support, query = draw_episodes(labels, ways, shots, episodes, seed)
    right = []
    for s in range(0, episodes, 100):  # 100 episodes at a time
        es = embeddings[torch.from_numpy(support[s:s + 100])]  # [e, ways, shots, E]
        eq = embeddings[torch.from_numpy(query[s:s + 100])]  # [e, ways (queries), E]
        if loss == 'pair-ce':
            # P(same) of every query with every support image: [e, query, class, shot].
            e, w, k, d = es.shape
            left = eq[:, :, None, None, :].expand(e, w, w, k, d)
            other = es[:, None, :, :, :].expand(e, w, w, k, d)
            p_same = torch.softmax(model.head(left.reshape(-1, d), other.reshape(-1, d)), dim=1)[:, 1]
            predicted = p_same.view(e, w, w, k).mean(3).argmax(2)
        else:
            prototypes = es.mean(2)  # [e, ways, E]
            distances = torch.linalg.vector_norm(eq[:, :, None, :] - prototypes[:, None, :, :], dim=3)
            predicted = distances.argmin(2)  # [e, query]
        right.append((predicted == torch.arange(ways)).double().mean(1).numpy())
    per_episode = np.concatenate(right)
    sd = per_episode.std(ddof=1) if episodes > 1 else 0.0
    return {'accuracy': float(per_episode.mean()), 'ci95': float(1.96 * sd / np.sqrt(episodes))}


def auc_and_eer(scores, same):
    """ROC AUC (Mann-Whitney, ties half) and the equal error rate of scores ("same" when higher)."""
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    positives, negatives = same.sum(), (~same).sum()
    # Average ranks (1-based) of tied scores.
    distinct, inverse, ties = np.unique(scores, return_inverse=True, return_counts=True)
    rank_of_distinct = np.cumsum(ties) - (ties - 1) / 2.0
    rank_sum = rank_of_distinct[inverse][same].sum()
    auc = (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)
    # ROC points, threshold from above every score down through each distinct score (descending).
    same_at = np.bincount(inverse, weights=same.astype(np.float64), minlength=len(distinct))[::-1]
    diff_at = np.bincount(inverse, weights=(~same).astype(np.float64), minlength=len(distinct))[::-1]
    tar = np.concatenate([[0.0], np.cumsum(same_at) / positives])
    far = np.concatenate([[0.0], np.cumsum(diff_at) / negatives])
    gap = far - (1.0 - tar)  # from -1 to 1, never decreasing
    i = int(np.argmax(gap >= 0))  # the first point at or past FAR = 1 - TAR (i >= 1: gap[0] = -1)
    step = gap[i] - gap[i - 1]
    fraction = -gap[i - 1] / step if step > 0 else 0.0
    eer = far[i - 1] + fraction * (far[i] - far[i - 1])
    return float(auc), float(eer)


def evaluate_set(model, loss, split, ways, episodes, seed):
    model.eval()
    with torch.inference_mode():
        embeddings = embed_all(model.embed, split.pixels, channels_last=False)
        result = {
            'oneShot': episode_accuracy(model, loss, embeddings, split.labels, ways, 1, episodes, seed),
            'fiveShot': episode_accuracy(model, loss, embeddings, split.labels, ways, 5, episodes, seed),
        }
        a, p, n = (embeddings[torch.from_numpy(split.pairs[:, i])] for i in range(3))
        if loss == 'pair-ce':
            score_same = torch.softmax(model.head(a, p), dim=1)[:, 1]
            score_diff = torch.softmax(model.head(a, n), dim=1)[:, 1]
        else:
            score_same = -torch.linalg.vector_norm(a - p, dim=1)
            score_diff = -torch.linalg.vector_norm(a - n, dim=1)
    scores = torch.cat([score_same, score_diff]).double().numpy()
    same = np.concatenate([np.ones(len(a), dtype=bool), np.zeros(len(a), dtype=bool)])
    result['auc'], result['eer'] = auc_and_eer(scores, same)
    result['pairs'] = 2 * len(split.pairs)
    result['classes'] = int(len(np.unique(split.labels)))
    result['images'] = split.count
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', required=True, help="the driver's folder")
    p.add_argument('--tower', default='reference', choices=['reference', 'conv4'])
    p.add_argument('--loss', default='pair-ce', choices=LOSSES)
    p.add_argument('--margin', type=float, default=1.0, help='margin of the contrastive and triplet losses')
    p.add_argument('--epochs', type=int, help="epochs (default: meta.json's, every triplets file)")
    p.add_argument('--batch', type=int, default=64, help='triplets a step')
    p.add_argument('--lr', type=float, default=0.001)
    p.add_argument('--weight-decay', type=float, default=0.0001)
    p.add_argument('--embedding', type=int,
                   help="conv4's embedding size (default: meta.json's embeddingSize, else 512)")
    p.add_argument('--ways', type=int, default=4)
    p.add_argument('--episodes', type=int, default=1000)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out')
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with open(os.path.join(args.data, 'meta.json')) as f:
        meta = json.load(f)
    epochs = args.epochs if args.epochs is not None else int(meta['epochs'])
    if not 1 <= epochs <= int(meta['epochs']):
        raise ValueError(f'--epochs {epochs}: the folder has triplets for {meta["epochs"]} epochs')
    embedding = args.embedding or int(meta.get('embeddingSize', 512))
    if args.tower == 'reference':
        embedding = 512  # Net's linear1

    train = Split(args.data, 'train', meta, with_pairs=False)
    triplets = [read_triplets(os.path.join(args.data, f'triplets-{e}.bin'), train) for e in range(epochs)]
    sets = {name: Split(args.data, name, meta, with_pairs=True) for name in ('test', 'seen')}
    overlap = set(np.unique(sets['test'].labels)) & set(np.unique(train.labels))
    if overlap:
        print(f'warning: the test set has trained classes: {sorted(int(c) for c in overlap)}', file=sys.stderr)

    model = make_model(args.tower, meta, embedding)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    train_losses = []
    started = time.perf_counter()
    for e, t in enumerate(triplets):
        epoch_started = time.perf_counter()
        train_losses.append(train_epoch(model, optimizer, args.loss, args.margin, train.pixels, t, args.batch))
        print(json.dumps({'epoch': e + 1, 'triplets': len(t), 'trainLoss': train_losses[-1],
                          'seconds': time.perf_counter() - epoch_started}), file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started

    started = time.perf_counter()
    evaluation = {name: evaluate_set(model, args.loss, s, args.ways, args.episodes, args.seed)
                  for name, s in sets.items()}
    result = {
        'tool': 'pytorch',
        'tower': args.tower,
        'loss': args.loss,
        'margin': args.margin if args.loss != 'pair-ce' else None,
        'embeddingSize': embedding,
        'epochs': epochs,
        'seconds': seconds,
        'evalSeconds': time.perf_counter() - started,
        'trainLoss': train_losses,
        'ways': args.ways,
        'episodes': args.episodes,
        'threads': args.threads,
        'torch': torch.__version__,
        'unseen': evaluation['test'],
        'seen': evaluation['seen'],
    }
    write_result(result, args.out)


if __name__ == '__main__':
    sys.exit(main())
