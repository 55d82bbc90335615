#!/usr/bin/env python3
"""Loads a siamese-torch model file into the reference PyTorch module and prints P(same) for
pairs of images, as JSON. The safetensors format is read with numpy alone (no pickle).

Usage: load_in_pytorch.py MODEL.safetensors PAIRS.json
PAIRS.json: {"left": [[784 bytes], ...], "right": [[784 bytes], ...]}
"""
import json
import struct
import sys

import os

import numpy as np
import torch

# The reference network, defined once: in the benchmark's faithful script of the recipe.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'bench'))
from reference import Net  # noqa: E402


def read_safetensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    metadata = header.pop('__metadata__', {})
    data = raw[8 + n:]
    tensors = {}
    for name, entry in header.items():
        assert entry['dtype'] == 'F32', entry['dtype']
        begin, end = entry['data_offsets']
        array = np.frombuffer(data[begin:end], dtype='<f4').reshape(entry['shape'])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors, metadata


def main():
    tensors, metadata = read_safetensors(sys.argv[1])
    with open(sys.argv[2]) as f:
        pairs = json.load(f)
    net = Net()
    net.load_state_dict(tensors, strict=True)
    net.eval()
    mean, std = float(metadata['norm_mean']), float(metadata['norm_std'])

    def batch(images):
        x = torch.tensor(images, dtype=torch.float32).view(-1, 1, 28, 28)
        return (x / 255.0 - mean) / std

    with torch.no_grad():
        logits = net([batch(pairs['left']), batch(pairs['right'])])
        p_same = torch.softmax(logits, dim=1)[:, 1]
    print(json.dumps({'pSame': p_same.tolist(), 'torch': torch.__version__}))


if __name__ == '__main__':
    main()
