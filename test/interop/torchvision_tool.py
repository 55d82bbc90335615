#!/usr/bin/env python3
"""torchvision's side of siamese-torch's interoperability tests: writes torchvision resnet18 weights
as safetensors, computes torchvision's features of images, and loads siamese-torch model files into
torchvision's resnet18 (or the conv4 tower of scripts/bench/towers.py) to embed images.
safetensors is read and written with numpy alone (no pickle, no safetensors module).

Usage:
  torchvision_tool.py write-resnet18 OUT.safetensors --seed S [--prefix P] [--channels 3]
                      [--num-classes 1000] [--extra]
      torch.manual_seed(S); torchvision.models.resnet18(num_classes=...) (conv1 taking C channels
      when C != 3); every BatchNorm given non-trivial running statistics (running_mean ~ 0.1 randn,
      running_var ~ U(0.5, 1.5), num_batches_tracked = 7); the state_dict written with every name
      prefixed by P (e.g. 'backbone.'), floats as F32, num_batches_tracked as I64 (shape []),
      in state_dict order, with __metadata__ {"format": "pt"} as safetensors.torch writes.
      --extra adds an unexpected tensor "extra.weight" (F32, [4]). Prints a JSON summary.
  torchvision_tool.py features WEIGHTS.safetensors PIXELS.bin --count N --width W --height H
                      --channels C --mean m0,m1,m2 --std s0,s1,s2 [--prefix P]
      Loads the weights (names starting with P, prefix stripped; others ignored) into torchvision's
      resnet18 (fc's shape and conv1's channels taken from the file), eval mode, and prints
      {"features": [[512 floats] per image], "outputs": [[fc's outputs] per image], "torch": ...,
      "torchvision": ...}: the input of fc (the flattened average-pool output), and fc's output.
  torchvision_tool.py embed-ours MODEL.safetensors PIXELS.bin --count N
      Loads a siamese-torch model file (architecture, input_width, input_height, input_channels,
      embedding_size, norm_mean, norm_std from its metadata) into torchvision's
      resnet18(num_classes=E) (conv1 taking C channels), the Conv4 tower of scripts/bench/towers.py,
      or the reference Net of scripts/bench/reference.py; linear2.* (the head) and optimizer.*
      (checkpoints) are set aside; eval mode; prints {"embeddings": [[E floats] per image],
      "missing": [...], "unexpected": [...], "pSameFirstPairs"?: ...}. missing and unexpected come
      from a strict=False load, for the record; then the strict=True load must pass (empty lists),
      else the JSON carries "error" and the exit status is 2.

PIXELS.bin: uint8, HWC interleaved (channel fastest), image after image; its first N images are
used. Each pixel is normalised per channel as x = (p / 255 - mean[c]) / std[c] (float32, NCHW).
--mean/--std (and the metadata's norm_mean/norm_std) take one number for every channel or one a
channel. Float tensors of any float dtype are read as float32; num_batches_tracked as int64 whether
stored as F32 or I64, of shape [] or [1].
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision

sys.dont_write_bytecode = True  # importing towers.py leaves no __pycache__ in the work tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'scripts', 'bench'))
from towers import Conv4, make_resnet18  # noqa: E402  (the towers, defined once)

# ---- safetensors by hand ----

DTYPES = {
    'F64': np.dtype('<f8'), 'F32': np.dtype('<f4'), 'F16': np.dtype('<f2'),
    'I64': np.dtype('<i8'), 'I32': np.dtype('<i4'), 'I16': np.dtype('<i2'), 'I8': np.dtype('i1'),
    'U8': np.dtype('u1'), 'BOOL': np.dtype('?'),
}
NAMES = {np.dtype(v.str.replace('<', '=')) if v.byteorder == '<' else v: k for k, v in DTYPES.items()}


def read_safetensors(path):
    """(tensors by name as torch tensors, metadata dict, header entries by name)."""
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    metadata = header.pop('__metadata__', None) or {}
    data = raw[8 + n:]
    tensors = {}
    for name, entry in header.items():
        if entry['dtype'] == 'BF16':
            begin, end = entry['data_offsets']
            bits = np.frombuffer(data[begin:end], dtype='<u2').astype(np.uint32) << 16
            array = bits.view(np.float32).reshape(entry['shape'])
        else:
            if entry['dtype'] not in DTYPES:
                raise ValueError(f'{path}: tensor {name!r} has dtype {entry["dtype"]}, which this tool does not read')
            begin, end = entry['data_offsets']
            array = np.frombuffer(data[begin:end], dtype=DTYPES[entry['dtype']]).reshape(entry['shape'])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors, metadata, header


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> torch tensor (written in this order, back to back)."""
    header = {}
    if metadata:
        header['__metadata__'] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        array = t.detach().cpu().contiguous().numpy()
        key = NAMES[np.dtype(array.dtype.name)]
        blob = array.astype(DTYPES[key], copy=False).tobytes()  # little-endian bytes
        header[name] = {'dtype': key, 'shape': list(array.shape), 'data_offsets': [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


# ---- state dicts ----

def coerce(state, reference):
    """The file's tensors in the dtypes and shapes the module wants: floats as float32, counters
    (num_batches_tracked) as int64; a tensor whose element count matches is reshaped ([1] -> [])."""
    out = {}
    for name, t in state.items():
        want = reference.get(name)
        if want is None:
            out[name] = t
            continue
        if name.endswith('num_batches_tracked'):
            t = t.to(torch.int64) if not t.is_floating_point() else t.round().to(torch.int64)
        elif want.is_floating_point():
            t = t.to(want.dtype)
        if tuple(t.shape) != tuple(want.shape) and t.numel() == want.numel() and want.dim() <= 1:
            t = t.reshape(want.shape)
        out[name] = t
    return out


def load_recorded(module, state):
    """strict=False for the record (missing, unexpected, shape mismatches), then strict=True."""
    reference = module.state_dict()
    state = coerce(state, reference)
    mismatched = [f'{k}: file {list(v.shape)}, module {list(reference[k].shape)}'
                  for k, v in state.items() if k in reference and tuple(v.shape) != tuple(reference[k].shape)]
    loadable = {k: v for k, v in state.items() if not (k in reference and tuple(v.shape) != tuple(reference[k].shape))}
    result = module.load_state_dict(loadable, strict=False)
    record = {'missing': list(result.missing_keys), 'unexpected': list(result.unexpected_keys),
              'shape_mismatch': mismatched}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        record['error'] = str(e)
    return record


# ---- pixels ----

def floats(text):
    return [float(v) for v in str(text).split(',')]


def per_channel(values, channels, what):
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise ValueError(f'{what}: {len(values)} values for {channels} channels')
    return values


def read_pixels(path, count, width, height, channels, mean, std):
    """NCHW float32, x = (p / 255 - mean[c]) / std[c], from uint8 HWC image after image."""
    raw = np.fromfile(path, dtype=np.uint8)
    need = count * width * height * channels
    if raw.size < need:
        raise ValueError(f'{path}: {raw.size} bytes; {count} images of {height}x{width}x{channels} need {need}')
    x = torch.from_numpy(raw[:need].reshape(count, height, width, channels).copy()).float()
    mean = torch.tensor(per_channel(mean, channels, 'mean'), dtype=torch.float32)
    std = torch.tensor(per_channel(std, channels, 'std'), dtype=torch.float32)
    x = (x / 255.0 - mean) / std
    # Standard NCHW strides even for one channel (where .contiguous() keeps the permuted strides,
    # which read as channels_last and make convolutions answer in channels_last).
    return x.permute(0, 3, 1, 2).clone(memory_format=torch.contiguous_format)


def metadata_numbers(metadata, key):
    """norm_mean / norm_std: one JSON number or a JSON array of numbers."""
    value = json.loads(metadata[key])
    return [float(v) for v in value] if isinstance(value, list) else [float(value)]


def rows(t):
    return [[float(v) for v in row] for row in t.tolist()]


# ---- subcommands ----

def cmd_write_resnet18(args):
    torch.manual_seed(args.seed)
    m = make_resnet18(args.channels, args.num_classes)
    with torch.no_grad():
        for module in m.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(0.1 * torch.randn_like(module.running_mean))
                module.running_var.copy_(torch.empty_like(module.running_var).uniform_(0.5, 1.5))
                module.num_batches_tracked.fill_(7)
    state = {args.prefix + k: (v.to(torch.int64) if k.endswith('num_batches_tracked') else v.float())
             for k, v in m.state_dict().items()}
    if args.extra:
        state['extra.weight'] = torch.randn(4)
    write_safetensors(args.out, state, {'format': 'pt'})  # what safetensors.torch.save_file writes
    print(json.dumps({'out': args.out, 'tensors': len(state), 'prefix': args.prefix, 'channels': args.channels,
                      'num_classes': args.num_classes, 'extra': args.extra,
                      'parameters': sum(p.numel() for p in m.parameters()),
                      'torch': torch.__version__, 'torchvision': torchvision.__version__}))


def cmd_features(args):
    tensors, _, _ = read_safetensors(args.weights)
    state = {k[len(args.prefix):]: v for k, v in tensors.items() if k.startswith(args.prefix)}
    for need in ('fc.weight', 'conv1.weight'):
        if need not in state:
            raise ValueError(f'{args.weights}: no tensor {args.prefix + need}')
    num_classes = state['fc.weight'].shape[0]
    file_channels = state['conv1.weight'].shape[1]
    if file_channels != args.channels:
        raise ValueError(f'{args.weights}: conv1 takes {file_channels} channels, --channels says {args.channels}')
    m = make_resnet18(args.channels, num_classes)
    state = {k: v for k, v in state.items() if k in m.state_dict()}  # features ignore anything else
    m.load_state_dict(coerce(state, m.state_dict()), strict=True)
    m.eval()
    captured = []
    m.fc.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].detach()))
    x = read_pixels(args.pixels, args.count, args.width, args.height, args.channels, args.mean, args.std)
    with torch.no_grad():
        outputs = m(x)
    print(json.dumps({'features': rows(captured[0]), 'outputs': rows(outputs), 'torch': torch.__version__,
                      'torchvision': torchvision.__version__}))


def cmd_embed_ours(args):
    tensors, metadata, _ = read_safetensors(args.model)
    architecture = metadata.get('architecture')
    width = int(metadata['input_width'])
    height = int(metadata['input_height'])
    channels = int(metadata.get('input_channels', '1'))
    embedding = int(metadata['embedding_size'])
    mean = metadata_numbers(metadata, 'norm_mean')
    std = metadata_numbers(metadata, 'norm_std')
    head = {k[len('linear2.'):]: v for k, v in tensors.items() if k.startswith('linear2.')}
    state = {k: v for k, v in tensors.items() if not k.startswith('linear2.') and not k.startswith('optimizer.')}
    if architecture == 'resnet18':
        tower = make_resnet18(channels, embedding)
    elif architecture == 'conv4':
        tower = Conv4(channels, width, height, embedding)
    elif architecture == 'reference':
        from reference import Net  # the reference module: its linear2 is the head, set aside here
        net = Net()
        tower = nn.Module()
        for name in ('conv1', 'conv2', 'conv3', 'linear1'):
            setattr(tower, name, getattr(net, name))

        def forward(x, net=net):
            x = torch.relu(net.conv3(torch.relu(net.conv2(net.pool1(torch.relu(net.conv1(x)))))))
            return torch.relu(net.linear1(x.view(x.shape[0], -1)))
        tower.forward = forward
    else:
        raise ValueError(f'{args.model}: unknown architecture {architecture!r}')
    record = load_recorded(tower, state)
    tower.eval()
    x = read_pixels(args.pixels, args.count, width, height, channels, mean, std)
    out = {'architecture': architecture, 'width': width, 'height': height, 'channels': channels,
           'embedding_size': embedding, 'mean': per_channel(mean, channels, 'norm_mean'),
           'std': per_channel(std, channels, 'norm_std')}
    out.update(record)
    if 'error' not in record:
        with torch.no_grad():
            e = tower(x)
            out['embeddings'] = rows(e)
            if set(head) == {'weight', 'bias'} and len(e) >= 2:
                # P(same) of images (0, 1), (2, 3), ...: the head on |e1 - e2|, logits (different, same).
                logits = torch.nn.functional.linear((e[0:len(e) // 2 * 2:2] - e[1:len(e) // 2 * 2:2]).abs(),
                                                    head['weight'].float(), head['bias'].float())
                out['pSameFirstPairs'] = torch.softmax(logits, dim=1)[:, 1].tolist()
    out['torch'] = torch.__version__
    out['torchvision'] = torchvision.__version__
    print(json.dumps(out))
    return 2 if 'error' in record else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='command', required=True)

    w = sub.add_parser('write-resnet18')
    w.add_argument('out')
    w.add_argument('--seed', type=int, required=True)
    w.add_argument('--prefix', default='')
    w.add_argument('--channels', type=int, default=3)
    w.add_argument('--num-classes', type=int, default=1000)
    w.add_argument('--extra', action='store_true')

    f = sub.add_parser('features')
    f.add_argument('weights')
    f.add_argument('pixels')
    f.add_argument('--count', type=int, required=True)
    f.add_argument('--width', type=int, required=True)
    f.add_argument('--height', type=int, required=True)
    f.add_argument('--channels', type=int, default=3)
    f.add_argument('--mean', type=floats, required=True)
    f.add_argument('--std', type=floats, required=True)
    f.add_argument('--prefix', default='')

    e = sub.add_parser('embed-ours')
    e.add_argument('model')
    e.add_argument('pixels')
    e.add_argument('--count', type=int, required=True)

    args = p.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    if args.command == 'write-resnet18':
        return cmd_write_resnet18(args)
    if args.command == 'features':
        return cmd_features(args)
    return cmd_embed_ours(args)


if __name__ == '__main__':
    sys.exit(main())
