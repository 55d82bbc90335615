#!/usr/bin/env python3
"""Loads a siamese-torch model file into the reference PyTorch module and prints P(same) for
pairs of images, as JSON. The safetensors format is read with numpy alone (no pickle).

Usage: load_in_pytorch.py MODEL.safetensors PAIRS.json
PAIRS.json: {"left": [[784 bytes], ...], "right": [[784 bytes], ...]}
"""
import json
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    """The reference network, as in RECIPE.md."""

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
            x = F.relu(self.conv1(x))
            x = self.pool1(x)
            x = F.relu(self.conv2(x))
            x = F.relu(self.conv3(x))
            x = x.view(x.shape[0], -1)
            res.append(F.relu(self.linear1(x)))
        return self.linear2(torch.abs(res[1] - res[0]))


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
