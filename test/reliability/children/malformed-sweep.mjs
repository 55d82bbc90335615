// Child of malformed-files.test.mjs: builds malformed model files, checkpoints and IDX files in
// the folder it is given, tries to read each one, and prints one JSON line per case:
//   { group, name, path, outcome: 'loaded' | <error code>, ... }
// then a last line { done: true, ... }. A crash shows as a missing last line and a signal.
import { mkdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { createModel, datasets, loadModel, train, SiameseTorchError } from 'siamese-torch'
import { idxImages, idxLabels, gz } from '../../helpers/idx.mjs'
import { expectArguments, random, statusMiB, tinyDigits } from '../common.mjs'

expectArguments(1, 'node malformed-sweep.mjs <scratch folder>')

const scratch = process.argv[2]
const print = (o) => process.stdout.write(`${JSON.stringify(o)}\n`)
const counts = {}

// Tries `read(path)`; a model that loads must also predict.
async function attempt (group, name, path, read = (p) => loadModel(p)) {
  counts[group] = (counts[group] ?? 0) + 1
  try {
    const model = await read(path)
    let p = null
    if (model) {
      p = await model.predict(new Uint8Array(784), new Uint8Array(784).fill(255))
      model.dispose()
    }
    print({ group, name, path, outcome: 'loaded', p })
  } catch (err) {
    print({
      group,
      name,
      path,
      outcome: typeof err?.code === 'string' ? err.code : `no code (${err?.name})`,
      siamese: err instanceof SiameseTorchError,
      message: String(err?.message),
      errPath: err?.path
    })
  }
}

// ---- the files everything else is made from -------------------------------------------------

const data = await tinyDigits()
const base = await createModel({ seed: 1 })
const modelPath = join(scratch, 'base-model.safetensors')
await base.save(modelPath)
base.dispose()

function parse (path) {
  const bytes = readFileSync(path)
  const headerLength = Number(bytes.readBigUInt64LE(0))
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'))
  const dataStart = 8 + headerLength
  // Tensors in file order, each with its own bytes.
  const tensors = Object.entries(header).filter(([k]) => k !== '__metadata__')
    .map(([name, v]) => ({ name, dtype: v.dtype, shape: v.shape, bytes: bytes.subarray(dataStart + v.data_offsets[0], dataStart + v.data_offsets[1]) }))
    .sort((a, b) => header[a.name].data_offsets[0] - header[b.name].data_offsets[0])
  return { bytes, headerLength, header, tensors, metadata: header.__metadata__ }
}
const model = parse(modelPath)
const clone = (x) => JSON.parse(JSON.stringify(x))

// A file from a header (object, or raw text) and data; lengthOverride lies about the header size.
function writeRaw (name, headerText, data, lengthOverride) {
  const json = Buffer.from(headerText, 'latin1')
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(lengthOverride ?? json.length))
  const path = join(scratch, name)
  writeFileSync(path, Buffer.concat([length, json, data]))
  return path
}
const writeHeader = (name, header, data = model.bytes.subarray(8 + model.headerLength), lengthOverride) =>
  writeRaw(name, JSON.stringify(header), data, lengthOverride)

// A well-formed layout (contiguous data) from a list of tensors and metadata.
function build (name, tensors, metadata = model.metadata) {
  const header = { __metadata__: metadata }
  let offset = 0
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] }
    offset += t.bytes.length
  }
  return writeHeader(name, header, Buffer.concat(tensors.map((t) => t.bytes)))
}

// IDX files: a folder of the four files of a set, one of them replaced.
const pixels = Buffer.from(Array.from({ length: 20 * 28 * 28 }, (_, i) => (i * 13) & 255))
const labels = Buffer.from(Array.from({ length: 20 }, (_, i) => i % 10))
const good = {
  't10k-images-idx3-ubyte': idxImages({ count: 20, pixels }),
  't10k-labels-idx1-ubyte': idxLabels({ count: 20, labels }),
  'train-images-idx3-ubyte.gz': gz(idxImages({ count: 20, pixels })),
  'train-labels-idx1-ubyte.gz': gz(idxLabels({ count: 20, labels }))
}
let folders = 0
// A folder holding the four files, one of them replaced; returns [folder, the replaced file].
const folder = (file, bytes) => {
  const dir = join(scratch, `idx-${folders++}`)
  mkdirSync(dir)
  for (const [n, b] of Object.entries(good)) if (n !== file) writeFileSync(join(dir, n), b)
  if (bytes === 'directory') mkdirSync(join(dir, file))
  else if (bytes !== null) writeFileSync(join(dir, file), bytes)
  return [dir, join(dir, file)]
}
const readIdx = (dir) => datasets.idx(dir).then(() => null)
const idxAttempt = async (group, name, file, bytes, options) => {
  const [dir, path] = folder(file, bytes)
  await attempt(group, name, path, () => (options ? datasets.idx(dir, options).then(() => null) : readIdx(dir)))
  rmSync(dir, { recursive: true, force: true })
}
const RAW = 't10k-images-idx3-ubyte'
const GZ = 'train-images-idx3-ubyte.gz'
const LABELS = 't10k-labels-idx1-ubyte'

// ---- 1. claims of huge sizes must not allocate ----------------------------------------------
// Run first, in a fresh process before any training, so that the resident peak (VmHWM) shows
// any allocation.

const hwmBefore = statusMiB('VmHWM')
const rssBefore = statusMiB('VmRSS')
{
  const h = clone(model.header)
  h['conv1.bias'] = { dtype: 'F32', shape: [1_000_000, 1_000_000], data_offsets: [0, 4e12] }
  await attempt('huge', '10^12 elements, data not in the file', writeHeader('huge-1.safetensors', h))

  // The same claim in a sparse file that really is 4 TB long: the header is consistent with the
  // file, and only the architecture check can refuse it.
  const sparse = { __metadata__: model.metadata, 'linear1.weight': { dtype: 'F32', shape: [1_000_000, 1_000_000], data_offsets: [0, 4e12] } }
  const text = JSON.stringify(sparse)
  const sparsePath = writeRaw('huge-sparse.safetensors', text, Buffer.alloc(0))
  let sparseOk = true
  try {
    truncateSync(sparsePath, 8 + Buffer.byteLength(text) + 4e12)
  } catch (err) {
    sparseOk = false
    print({ group: 'huge', skipped: `sparse 4 TB file: ${err.code}` })
  }
  if (sparseOk) await attempt('huge', '10^12 elements in a sparse 4 TB file', sparsePath)
  rmSync(sparsePath, { force: true })

  for (const [w, e] of [[4096, 65536], [4096, 512], [2048, 8], [1024, 64]]) {
    const m = { ...model.metadata, input_width: String(w), input_height: String(w), embedding_size: String(e) }
    await attempt('huge', `metadata claims ${w}x${w} input, embedding ${e}`, build(`huge-arch-${w}-${e}.safetensors`, model.tensors, m))
  }
  for (const n of [2n ** 40n, 2n ** 63n, 2n ** 64n - 1n]) {
    await attempt('huge', `header length ${n}`, writeHeader(`huge-len-${n}.safetensors`, model.header, undefined, n))
  }
}
{
  const header = (count, rows, cols) => {
    const b = Buffer.alloc(16)
    b.writeUInt32BE(2051, 0)
    b.writeUInt32BE(count, 4)
    b.writeUInt32BE(rows, 8)
    b.writeUInt32BE(cols, 12)
    return b
  }
  await idxAttempt('idx huge', 'claims 2^32-1 images of 28x28 (over the limit)', RAW, Buffer.concat([header(2 ** 32 - 1, 28, 28), pixels]))
  await idxAttempt('idx huge', 'claims 5,000,000 images of 28x28, holds 20', RAW, Buffer.concat([header(5_000_000, 28, 28), pixels]))
  await idxAttempt('idx huge', 'claims 65535x65535 images', RAW, Buffer.concat([header(1, 65535, 65535), pixels]))
  await idxAttempt('idx huge', 'gzip claims 5,000,000 images', GZ, gz(Buffer.concat([header(5_000_000, 28, 28), pixels])))
  await idxAttempt('idx huge', 'labels claim 2^32-1', LABELS, Buffer.concat([Buffer.from([0, 0, 8, 1, 255, 255, 255, 255]), labels]))
  await idxAttempt('idx huge', 'rows 0', RAW, header(20, 0, 28))
}
const hwmAfter = statusMiB('VmHWM')
const rssAfter = statusMiB('VmRSS')
print({ group: 'huge', memory: { hwmBefore, hwmAfter, rssBefore, rssAfter } })

// A checkpoint to break, made after the measurement above (training needs memory of its own).
const trained = await train({ data, epochs: 1, saveEvery: 1, outDir: join(scratch, 'run'), seed: 3 })
trained.model.dispose()
const checkpoint = parse(join(scratch, 'run', 'checkpoint-epoch-1.safetensors'))

// ---- 2. truncated at many offsets -----------------------------------------------------------

for (const [kind, file] of [['model', model], ['checkpoint', checkpoint]]) {
  const size = file.bytes.length
  const h = 8 + file.headerLength
  const offsets = new Set([0, 1, 7, 8, 9, 20, Math.floor(h / 2), h - 2, h - 1, h, h + 1, h + 3, size - 4, size - 1])
  for (let k = 1; offsets.size < 40; k++) offsets.add(Math.floor((k * size) / 27))
  for (const cut of [...offsets].sort((a, b) => a - b)) {
    const path = join(scratch, `cut-${kind}.safetensors`)
    writeFileSync(path, file.bytes.subarray(0, cut))
    await attempt(`truncated ${kind}`, `cut at ${cut} of ${size}`, path)
  }
}
// A truncated checkpoint given to train({ resume }).
for (const cut of [8, 8 + checkpoint.headerLength, checkpoint.bytes.length - 1]) {
  const path = join(scratch, 'cut-resume.safetensors')
  writeFileSync(path, checkpoint.bytes.subarray(0, cut))
  await attempt('truncated checkpoint (resume)', `cut at ${cut}`, path, (p) => train({ resume: p, data, epochs: 2 }).then((r) => r.model))
}

// ---- 3. bytes flipped (seeded) ----------------------------------------------------------------

for (const [kind, file, variants, seed] of [['model', model, 100, 7], ['checkpoint', checkpoint, 40, 8]]) {
  const rand = random(seed)
  const path = join(scratch, `flip-${kind}.safetensors`)
  for (let i = 0; i < variants; i++) {
    const copy = Buffer.from(file.bytes)
    // Half the variants hit the header (length and JSON), half anywhere (mostly tensor data).
    const span = i % 2 === 0 ? 8 + file.headerLength : copy.length
    const flips = 1 + Math.floor(rand() * 4)
    const where = []
    for (let k = 0; k < flips; k++) {
      const at = Math.floor(rand() * span)
      copy[at] ^= 1 << Math.floor(rand() * 8)
      where.push(at)
    }
    writeFileSync(path, copy)
    await attempt(`flipped ${kind}`, `variant ${i}: bytes ${where.join(', ')}`, path)
  }
}
// Flipped checkpoint headers through train({ resume }): stopped at the first batch if it starts.
{
  const rand = random(9)
  const path = join(scratch, 'flip-resume.safetensors')
  for (let i = 0; i < 12; i++) {
    const copy = Buffer.from(checkpoint.bytes)
    const at = 8 + Math.floor(rand() * checkpoint.headerLength)
    copy[at] ^= 1 << Math.floor(rand() * 8)
    writeFileSync(path, copy)
    await attempt('flipped checkpoint (resume)', `byte ${at}`, path, async (p) => {
      const controller = new AbortController()
      // As many epochs as allowed, so that a flipped "epoch" still leaves some to train.
      const run = train({ resume: p, data, epochs: 1_000_000, signal: controller.signal, onProgress: (e) => { if (e.type === 'batch') controller.abort() } })
      try {
        return (await run).model
      } catch (err) {
        if (err.code === 'ABORT_ERR') return null // it loaded and trained: fine
        throw err
      }
    })
  }
}

// ---- 4. headers that lie ------------------------------------------------------------------------

{
  const dataBytes = model.bytes.subarray(8 + model.headerLength)
  const size = model.bytes.length
  await attempt('header', 'length larger than the file', writeHeader('len-big.safetensors', model.header, dataBytes, size))
  await attempt('header', 'length one past the end', writeHeader('len-past.safetensors', model.header, dataBytes, size - 7))
  await attempt('header', 'length 0', writeHeader('len-0.safetensors', model.header, dataBytes, 0))
  await attempt('header', 'length one short', writeHeader('len-short.safetensors', model.header, dataBytes, model.headerLength - 1))
  const text = JSON.stringify(model.header)
  await attempt('header', 'JSON cut in the middle', writeRaw('json-cut.safetensors', text.slice(0, 200), dataBytes))
  await attempt('header', 'not JSON at all', writeRaw('json-no.safetensors', 'this is not json', dataBytes))
  await attempt('header', 'JSON array', writeRaw('json-array.safetensors', '[1, 2, 3]', Buffer.alloc(0)))
  await attempt('header', 'JSON null', writeRaw('json-null.safetensors', 'null', Buffer.alloc(0)))
  await attempt('header', 'JSON string', writeRaw('json-string.safetensors', '"safetensors"', Buffer.alloc(0)))
  await attempt('header', 'nested 10000 deep', writeRaw('json-deep.safetensors', `{"__metadata__":{"a":${'['.repeat(10000)}${']'.repeat(10000)}}}`, Buffer.alloc(0)))
  await attempt('header', 'duplicate keys', writeRaw('json-dup.safetensors', text.replace('{"__metadata__"', '{"conv1.bias":{},"__metadata__"'), dataBytes))
  await attempt('header', 'bad escape', writeRaw('json-escape.safetensors', text.replace('"reference"', '"ref\\qerence"'), dataBytes))
  await attempt('header', 'lone surrogate', writeRaw('json-surrogate.safetensors', text.replace('"reference"', '"\\ud800"'), dataBytes))
  await attempt('header', 'NUL and non-UTF-8 bytes', writeRaw('json-bytes.safetensors', text.replace('"reference"', '"ref\u0000\u00ff"'), dataBytes))
  await attempt('header', 'number out of range', writeRaw('json-range.safetensors', text.replace('"data_offsets":[0,', '"data_offsets":[1e999,'), dataBytes))
  await attempt('header', 'trailing garbage', writeRaw('json-trailing.safetensors', `${text}}`, dataBytes))
  await attempt('header', 'padded with spaces (valid)', writeRaw('json-padded.safetensors', `${text}${' '.repeat(13)}`, dataBytes))
}

// ---- 5. tensors that do not fit the data or the architecture -----------------------------------

{
  const entry = (h, name) => h[name]
  const cases = [
    ['overlapping offsets', (h) => { entry(h, 'conv1.bias').data_offsets = [...entry(h, 'conv1.weight').data_offsets] }],
    ['out-of-range offsets', (h) => { const o = entry(h, 'linear2.bias').data_offsets; o[0] += 1e12; o[1] += 1e12 }],
    ['end past the file', (h) => { entry(h, 'linear2.bias').data_offsets[1] += 4 }],
    ['reversed offsets', (h) => { entry(h, 'conv1.bias').data_offsets.reverse() }],
    ['negative offsets', (h) => { const o = entry(h, 'conv1.bias').data_offsets; o[0] = -256; o[1] = 0 }],
    ['fractional offsets', (h) => { const o = entry(h, 'conv1.bias').data_offsets; o[0] += 0.5; o[1] += 0.5 }],
    ['offsets as strings', (h) => { entry(h, 'conv1.bias').data_offsets = entry(h, 'conv1.bias').data_offsets.map(String) }],
    ['three offsets', (h) => { entry(h, 'conv1.bias').data_offsets.push(0) }],
    ['offsets missing', (h) => { delete entry(h, 'conv1.bias').data_offsets }],
    ['offsets beyond 2^63', (h) => { entry(h, 'linear2.bias').data_offsets[1] = 2 ** 70 }],
    ['dtype F64 (same bytes)', (h) => { const e = entry(h, 'conv1.bias'); e.dtype = 'F64'; e.shape = [32] }],
    ['dtype I32 (same bytes)', (h) => { entry(h, 'conv1.bias').dtype = 'I32' }],
    ['dtype F16', (h) => { const e = entry(h, 'conv1.bias'); e.dtype = 'F16'; e.shape = [128] }],
    ['dtype unknown', (h) => { entry(h, 'conv1.bias').dtype = 'Q4' }],
    ['dtype not a string', (h) => { entry(h, 'conv1.bias').dtype = 4 }],
    ['dtype missing', (h) => { delete entry(h, 'conv1.bias').dtype }],
    ['shape too small', (h) => { entry(h, 'conv1.bias').shape = [32] }],
    ['shape transposed (same bytes)', (h) => { entry(h, 'linear1.weight').shape = [2304, 512] }],
    ['shape with an extra dimension', (h) => { entry(h, 'conv1.bias').shape = [64, 1] }],
    ['shape negative', (h) => { entry(h, 'conv1.bias').shape = [-64] }],
    ['shape not integers', (h) => { entry(h, 'conv1.bias').shape = [64.5] }],
    ['shape not an array', (h) => { entry(h, 'conv1.bias').shape = '64' }],
    ['shape overflows', (h) => { entry(h, 'conv1.bias').shape = [2 ** 31, 2 ** 31, 2 ** 31] }],
    ['shape empty (a scalar)', (h) => { entry(h, 'conv1.bias').shape = [] }],
    ['tensor is not an object', (h) => { h['conv1.bias'] = 5 }]
  ]
  for (const [name, change] of cases) {
    const h = clone(model.header)
    change(h)
    await attempt('tensors', name, writeHeader('tensors.safetensors', h))
  }
  const tensors = model.tensors
  await attempt('tensors', 'a tensor missing', build('missing.safetensors', tensors.filter((t) => t.name !== 'conv2.bias')))
  await attempt('tensors', 'an unexpected tensor', build('unexpected.safetensors', [...tensors, { name: 'extra.weight', dtype: 'F32', shape: [4], bytes: Buffer.alloc(16) }]))
  await attempt('tensors', 'a tensor renamed', build('renamed.safetensors', tensors.map((t) => (t.name === 'conv1.bias' ? { ...t, name: 'conv1.biaz' } : t))))
  await attempt('tensors', 'optimizer tensors in a model file', build('opt-in-model.safetensors', [...tensors, { ...tensors[1], name: 'optimizer.conv1.bias.exp_avg' }]))
  await attempt('tensors', 'no tensors at all', build('empty-model.safetensors', []))
  const poisoned = (value) => tensors.map((t) => {
    if (t.name !== 'linear1.weight') return t
    const bytes = Buffer.from(t.bytes)
    bytes.writeFloatLE(value, 4 * 1000)
    return { ...t, bytes }
  })
  await attempt('tensors', 'a NaN weight', build('nan.safetensors', poisoned(NaN)))
  await attempt('tensors', 'an infinite weight', build('inf.safetensors', poisoned(-Infinity)))
  await attempt('tensors', 'a huge finite weight (valid)', build('big-weight.safetensors', poisoned(3e38)))
}

// ---- 6. metadata that is missing, not a string, or wrong -----------------------------------------

{
  const cases = [
    ['metadata missing', (h) => { delete h.__metadata__ }],
    ['metadata an array', (h) => { h.__metadata__ = ['a'] }],
    ['metadata a string', (h) => { h.__metadata__ = 'x' }],
    ['a metadata value not a string', (h) => { h.__metadata__.input_width = 28 }],
    ['a metadata value an object', (h) => { h.__metadata__.loss = { name: 'pair-ce' } }],
    ['format missing', (h) => { delete h.__metadata__['siamese_torch.format'] }],
    ['format from the future', (h) => { h.__metadata__['siamese_torch.format'] = '2' }],
    ['architecture unknown', (h) => { h.__metadata__.architecture = 'resnet' }],
    ['input_width not a number', (h) => { h.__metadata__.input_width = 'wide' }],
    ['input_width empty', (h) => { h.__metadata__.input_width = '' }],
    ['input_width 1e400', (h) => { h.__metadata__.input_width = '1e400' }],
    ['input_width negative', (h) => { h.__metadata__.input_width = '-28' }],
    ['input_width fractional', (h) => { h.__metadata__.input_width = '28.5' }],
    ['input_width too small', (h) => { h.__metadata__.input_width = '12' }],
    ['embedding_size 0', (h) => { h.__metadata__.embedding_size = '0' }],
    ['norm_std 0', (h) => { h.__metadata__.norm_std = '0' }],
    ['norm_mean NaN', (h) => { h.__metadata__.norm_mean = 'NaN' }],
    ['loss unknown', (h) => { h.__metadata__.loss = 'hinge' }],
    ['margin infinite', (h) => { h.__metadata__.margin = 'inf' }],
    ['threshold missing', (h) => { delete h.__metadata__.threshold }],
    ['classes not JSON (valid: classes is optional)', (h) => { h.__metadata__.classes = '[oops' }]
  ]
  for (const [name, change] of cases) {
    const h = clone(model.header)
    change(h)
    await attempt('metadata', name, writeHeader('metadata.safetensors', h))
  }
}

// ---- 7. checkpoints: optimizer state and training options -----------------------------------------

{
  const ckData = checkpoint.bytes.subarray(8 + checkpoint.headerLength)
  const resume = (p) => train({ resume: p, data, epochs: 2 }).then((r) => r.model)
  const cases = [
    ['unknown optimizer', (h) => { h.__metadata__.optimizer = 'rmsprop' }, loadModel],
    ['optimizer_step not a number', (h) => { h.__metadata__.optimizer_step = 'many' }, loadModel],
    ['optimizer_step huge', (h) => { h.__metadata__.optimizer_step = '1e300' }, loadModel],
    ['optimizer tensors without optimizer metadata', (h) => { delete h.__metadata__.optimizer }, loadModel],
    ['optimizer tensor of the wrong shape', (h) => { const e = h['optimizer.conv1.bias.exp_avg']; e.shape = [8, 8] }, loadModel],
    ['optimizer tensor for no parameter', (h) => { h['optimizer.conv9.bias.exp_avg'] = h['optimizer.conv1.bias.exp_avg']; delete h['optimizer.conv1.bias.exp_avg'] }, loadModel],
    ['train_options not JSON', (h) => { h.__metadata__.train_options = '{"epochs":' }, resume],
    ['train_options null', (h) => { h.__metadata__.train_options = 'null' }, resume],
    ['train_options an array', (h) => { h.__metadata__.train_options = '[1,2]' }, resume],
    ['train_options with an unusable value', (h) => { const o = JSON.parse(h.__metadata__.train_options); o.pairs = 'random'; h.__metadata__.train_options = JSON.stringify(o) }, resume],
    ['train_options with a negative lr', (h) => { const o = JSON.parse(h.__metadata__.train_options); o.lr = -1; h.__metadata__.train_options = JSON.stringify(o) }, resume],
    ['epoch not a number', (h) => { h.__metadata__.epoch = 'first' }, resume],
    ['a model file as a checkpoint', null, resume]
  ]
  for (const [name, change, read] of cases) {
    if (change === null) {
      await attempt('checkpoint', name, modelPath, read)
      continue
    }
    const h = clone(checkpoint.header)
    change(h)
    await attempt('checkpoint', name, writeHeader('checkpoint.safetensors', h, ckData), read)
  }
}

// ---- 8. not a model file at all ---------------------------------------------------------------------

{
  const write = (name, bytes) => { const p = join(scratch, name); writeFileSync(p, bytes); return p }
  await attempt('not a model', 'pickle protocol 2 (.pt)', write('model.pt', Buffer.from([0x80, 0x02, 0x63, 0x63, 0x6f, 0x6c, 0x6c, 0x65, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x73, 0x0a])))
  // A PyTorch 1.6+ .pt file is a zip archive (local file header "PK\x03\x04") holding data.pkl.
  const name = Buffer.from('archive/data.pkl')
  const zipHeader = Buffer.alloc(30)
  zipHeader.writeUInt32LE(0x04034b50, 0)
  zipHeader.writeUInt16LE(name.length, 26)
  await attempt('not a model', 'PyTorch zip (.pth)', write('model.pth', Buffer.concat([zipHeader, name, Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]), Buffer.alloc(64)])))
  await attempt('not a model', 'empty file', write('empty.safetensors', Buffer.alloc(0)))
  await attempt('not a model', 'seven bytes', write('seven.safetensors', Buffer.from('1234567')))
  await attempt('not a model', 'a JSON text file', write('model.json', Buffer.from('{"conv1.weight": [1, 2, 3]}\n')))
  await attempt('not a model', 'a PNG image', write('image.png', Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(100)])))
  const dir = join(scratch, 'a-folder.safetensors')
  mkdirSync(dir)
  await attempt('not a model', 'a directory', dir)
  await attempt('not a model', 'a missing file', join(scratch, 'no-such.safetensors'))
  const loop = join(scratch, 'loop.safetensors')
  symlinkSync(loop, loop)
  await attempt('not a model', 'a symlink to itself', loop)
  const fifo = join(scratch, 'fifo.safetensors')
  execFileSync('mkfifo', [fifo])
  await attempt('not a model', 'a FIFO (opening it would block)', fifo)
  await attempt('not a model', 'a character device', '/dev/zero')
}

// ---- 9. IDX files in the same spirit ----------------------------------------------------------------

{
  for (const [file, bytes] of [[RAW, good[RAW]], [GZ, good[GZ]], [LABELS, good[LABELS]]]) {
    const offsets = new Set([0, 1, 3, 4, 7, 8, 11, 12, 15, 16, bytes.length - 1])
    for (let k = 1; offsets.size < 20; k++) offsets.add(Math.floor((k * bytes.length) / 13))
    for (const cut of [...offsets].sort((a, b) => a - b).filter((c) => c < bytes.length)) {
      await idxAttempt('idx truncated', `${file} cut at ${cut} of ${bytes.length}`, file, bytes.subarray(0, cut))
    }
  }
  const rand = random(11)
  for (let i = 0; i < 60; i++) {
    const file = [RAW, GZ, LABELS][i % 3]
    const copy = Buffer.from(good[file])
    const span = i % 2 === 0 ? Math.min(16, copy.length) : copy.length
    const at = Math.floor(rand() * span)
    copy[at] ^= 1 << Math.floor(rand() * 8)
    await idxAttempt('idx flipped', `${file} variant ${i}: byte ${at}`, file, copy)
  }
  await idxAttempt('idx other', 'empty file', RAW, Buffer.alloc(0))
  await idxAttempt('idx other', 'a directory', RAW, 'directory')
  await idxAttempt('idx other', 'labels file in place of images', RAW, good[LABELS])
  await idxAttempt('idx other', 'images file in place of labels', LABELS, good[RAW])
  await idxAttempt('idx other', 'gzip inside gzip', GZ, gz(good[GZ]))
  await idxAttempt('idx other', 'a safetensors file', RAW, model.bytes.subarray(0, 4096))
  await idxAttempt('idx other', 'one label too few', LABELS, idxLabels({ count: 19, labels: labels.subarray(0, 19) }))
  await idxAttempt('idx other', 'padded with extra bytes', RAW, Buffer.concat([good[RAW], Buffer.alloc(5)]))
  await idxAttempt('idx other', 'label outside the classes given', LABELS, idxLabels({ count: 20, labels: Buffer.from(labels).fill(12, 3, 4) }), { classes: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'] })
  await idxAttempt('idx other', 'gzip with a bad checksum', GZ, (() => { const b = Buffer.from(good[GZ]); b[b.length - 6] ^= 0xff; return b })())
}

print({ done: true, counts, rss: statusMiB('VmRSS'), hwm: statusMiB('VmHWM') })
