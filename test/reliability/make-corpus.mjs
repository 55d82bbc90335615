// Writes the fuzzers' seed corpus (test/reliability/corpus/, committed): small valid files and
// malformed ones that each reach a different check. Run again after changing it:
//   node test/reliability/make-corpus.mjs
// Seeds of bugs found by fuzzing are named regression-*; they are added by hand (libFuzzer's own
// crash file, renamed) and this script leaves them alone.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gz, idxImages, idxLabels } from '../helpers/idx.mjs'

const corpus = join(dirname(fileURLToPath(import.meta.url)), 'corpus')

function writeSeeds (folder, seeds) {
  const dir = join(corpus, folder)
  mkdirSync(dir, { recursive: true })
  for (const name of readdirSync(dir)) {
    if (!name.startsWith('regression-')) rmSync(join(dir, name))
  }
  for (const [name, bytes] of Object.entries(seeds)) writeFileSync(join(dir, name), bytes)
}

// --- IDX (native/fuzz/fuzz_idx.cc): the first byte is the form, 0 as is, 1 gzipped by the harness.
const asIs = (file) => Buffer.concat([Buffer.from([0]), file])
const gzippedByHarness = (file) => Buffer.concat([Buffer.from([1]), file])
const images = idxImages({ count: 2, rows: 3, cols: 2, pixels: Buffer.from([0, 1, 2, 253, 254, 255, 9, 8, 7, 6, 5, 4]) })
const labels = idxLabels({ count: 3 })
const header = (words) => Buffer.concat(words.map((w) => { const b = Buffer.alloc(4); b.writeUInt32BE(w); return b }))
const gzipped = gz(images)
const corruptCrc = Buffer.from(gzipped)
corruptCrc[corruptCrc.length - 6] ^= 0xff

writeSeeds('idx', {
  'images-raw': asIs(images),
  'images-gzip-by-harness': gzippedByHarness(images),
  'images-gzipped': asIs(gzipped),
  'labels-raw': asIs(labels),
  'labels-gzip-by-harness': gzippedByHarness(labels),
  'labels-gzipped': asIs(gz(labels)),
  'empty-file': asIs(Buffer.alloc(0)),
  'truncated-header': asIs(images.subarray(0, 10)),
  'truncated-pixels': asIs(images.subarray(0, images.length - 1)),
  'padded-pixels': asIs(Buffer.concat([images, Buffer.from([0])])),
  'zero-count': asIs(header([2051, 0, 28, 28])),
  'zero-rows': asIs(header([2051, 1, 0, 28])),
  'size-overflow': asIs(header([2051, 0xffffffff, 0xffffffff, 0xffffffff])),
  'over-4-gib': asIs(header([2051, 65537, 256, 256])),
  'claims-a-billion-labels': asIs(header([2049, 1e9, 1, 2, 3])),
  'labels-magic-in-images': asIs(header([2049, 1, 1, 1, 0])),
  'gzip-in-gzip': asIs(gz(gzipped)),
  'truncated-gzip': asIs(gzipped.subarray(0, gzipped.length - 10)),
  'corrupt-gzip-crc': asIs(corruptCrc),
  'gzip-then-garbage': asIs(Buffer.concat([gzipped, Buffer.from('garbage')]))
})

// --- Model files (native/fuzz/fuzz_model.cc): safetensors; the harness fills in zeros for the
// data a header describes but the input does not carry.
function safetensors (entries, { data = Buffer.alloc(0), pad = true } = {}) {
  let json = typeof entries === 'string' ? entries : JSON.stringify(entries)
  if (pad) json += ' '.repeat((8 - (json.length % 8)) % 8)
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)))
  return Buffer.concat([length, Buffer.from(json), data])
}

// The reference network's parameters (native/core/network.cc) for an input size and embedding.
function parameters (width, height, embedding) {
  const side = (n) => Math.trunc((n - 6) / 2) - 8
  const flatten = 256 * side(width) * side(height)
  return [
    ['conv1.weight', [64, 1, 7, 7]], ['conv1.bias', [64]],
    ['conv2.weight', [128, 64, 5, 5]], ['conv2.bias', [128]],
    ['conv3.weight', [256, 128, 5, 5]], ['conv3.bias', [256]],
    ['linear1.weight', [embedding, flatten]], ['linear1.bias', [embedding]],
    ['linear2.weight', [2, embedding]], ['linear2.bias', [2]]
  ]
}

// A model's header; `change` edits the tensor list ({ name: { dtype, shape } }) before the
// offsets are laid out, so that each broken header breaks one thing only.
function modelHeader ({ width = 24, height = 24, embedding = 1, metadata = {}, extra = [], change = (t) => t } = {}) {
  let tensors = {}
  for (const [name, shape] of [...parameters(width, height, embedding), ...extra]) tensors[name] = { dtype: 'F32', shape }
  tensors = change(tensors)
  const entries = {
    __metadata__: {
      'siamese_torch.format': '1',
      kind: 'model',
      architecture: 'reference',
      input_width: String(width),
      input_height: String(height),
      embedding_size: String(embedding),
      norm_mean: '0.1307',
      norm_std: '0.3081',
      loss: 'pair-ce',
      margin: '1',
      threshold: '0.5',
      ...metadata
    }
  }
  const size = { F32: 4, F64: 8 }
  let offset = 0
  for (const [name, { dtype, shape }] of Object.entries(tensors)) {
    const bytes = size[dtype] * shape.reduce((a, b) => a * b, 1)
    entries[name] = { dtype, shape, data_offsets: [offset, offset + bytes] }
    offset += bytes
  }
  return entries
}

const small = {
  __metadata__: { note: 'not a model' },
  a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
  b: { dtype: 'U8', shape: [2, 2], data_offsets: [8, 12] },
  c: { dtype: 'BOOL', shape: [0], data_offsets: [12, 12] }
}
const smallData = Buffer.from([0, 0, 128, 63, 0, 0, 0, 64, 1, 2, 3, 4])
const nan = Buffer.from([0, 0, 0xc0, 0x7f])
const withTensor = (name, change) => (t) => ({ ...t, [name]: change(t[name]) })

writeSeeds('model', {
  'safetensors-small': safetensors(small, { data: smallData }),
  'safetensors-unpadded': safetensors(small, { data: smallData, pad: false }),
  'model-24x24': safetensors(modelHeader()),
  'model-28x28-e8-contrastive': safetensors(modelHeader({ width: 28, height: 28, embedding: 8, metadata: { loss: 'contrastive', margin: '2' } })),
  'checkpoint-adam': safetensors(modelHeader({
    metadata: { kind: 'checkpoint', optimizer: 'adam', optimizer_lr: '0.001', optimizer_step: '3' },
    extra: [['optimizer.linear2.bias.exp_avg', [2]], ['optimizer.linear2.bias.exp_avg_sq', [2]]]
  })),
  'model-nan-weight': safetensors(modelHeader(), { data: nan }),
  pickle: Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e, 0, 0, 0, 0]),
  zip: Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(26)]),
  'too-short': Buffer.from([1, 0, 0]),
  'header-over-100-mb': Buffer.from([0, 0, 0, 0, 0, 0, 0, 0x10, 0x7b, 0x7d]),
  'header-longer-than-file': Buffer.from([0x10, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d]),
  'json-invalid': safetensors('{"a": {"dtype": "F32",}}'),
  'json-duplicate-key': safetensors('{"a":{"dtype":"U8","shape":[],"data_offsets":[0,1]},"a":{}}', { data: Buffer.from([1]) }),
  'json-deep': safetensors('{"__metadata__":' + '['.repeat(70) + ']'.repeat(70) + '}'),
  'json-escapes': safetensors('{"__metadata__":{"\\ud83d\\ude00\\u00e9\\n\\/":"\\ud800"}}'),
  'json-big-number': safetensors('{"a":{"dtype":"U8","shape":[1e999],"data_offsets":[0,0]}}'),
  // Small forms of two bugs whose real inputs are too big for a seed (core_tests.cc checks those):
  // many keys (duplicates were found by a quadratic scan) and many tiny values (~60x the text in
  // memory, now bounded).
  'json-many-keys-one-duplicate': safetensors('{"__metadata__":{' +
    Array.from({ length: 300 }, (_, i) => `"${i}":""`).join(',') + ',"7":""}}'),
  'json-many-values': safetensors('{"__metadata__":{},"a":{"dtype":"U8","shape":[' + Array(1500).fill('0').join(',') +
    '],"data_offsets":[0,0]}}'),
  'json-not-object': safetensors('[1, 2.5, true, false, null, "x"]'),
  'shape-negative': safetensors('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}'),
  'shape-overflow': safetensors('{"a":{"dtype":"F64","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}}'),
  'shape-large-in-small-file': safetensors('{"a":{"dtype":"F32","shape":[1000000000],"data_offsets":[0,4000000000]}}'),
  'offsets-overlap': safetensors('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}', { data: Buffer.alloc(3) }),
  'offsets-gap': safetensors('{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', { data: Buffer.alloc(2) }),
  'offsets-reversed': safetensors('{"a":{"dtype":"U8","shape":[1],"data_offsets":[2,1]}}', { data: Buffer.alloc(2) }),
  'dtype-unknown': safetensors('{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}', { data: Buffer.alloc(1) }),
  'metadata-not-string': safetensors('{"__metadata__":{"a":1}}'),
  // Metadata that asks for a network of 4096x4096 images and 65,536 embeddings (280 TB of
  // weights) over a header of the smallest one: refused before the network is built.
  'model-claims-huge-network': safetensors(modelHeader({ metadata: { input_width: '4096', input_height: '4096', embedding_size: '65536' } })),
  'model-wrong-format': safetensors(modelHeader({ metadata: { 'siamese_torch.format': '2' } })),
  'model-wrong-architecture': safetensors(modelHeader({ metadata: { architecture: 'resnet' } })),
  'model-bad-numbers': safetensors(modelHeader({ metadata: { norm_std: '0', margin: 'nan', input_width: '24.5' } })),
  'model-unknown-loss': safetensors(modelHeader({ metadata: { loss: 'hinge' } })),
  'model-unknown-optimizer': safetensors(modelHeader({ metadata: { optimizer: 'lbfgs' } })),
  'model-f64-weight': safetensors(modelHeader({ change: withTensor('linear2.bias', (t) => ({ ...t, dtype: 'F64' })) })),
  'model-wrong-shape': safetensors(modelHeader({ change: withTensor('linear2.bias', (t) => ({ ...t, shape: [1, 2] })) })),
  'model-unexpected-tensor': safetensors(modelHeader({ extra: [['linear3.bias', [2]]] })),
  'model-missing-tensor': safetensors(modelHeader({ change: ({ 'conv1.bias': _, ...rest }) => rest })),
  'model-optimizer-mismatch': safetensors(modelHeader({ metadata: { optimizer: 'sgd' }, extra: [['optimizer.linear9.momentum', [2]]] }))
})
