// The native IDX reader: good files in both forms, and every malformed case with its exact error;
// the pixels held natively, and trained on as a copy of them would be.
import t from 'tap'
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createModel, datasets, train, SiameseTorchError } from 'siamese-torch'
import { toNativeData } from '../dist/datasets/arrays.js'
import { storeOf } from '../dist/datasets/native-pixels.js'
import { idxImages, idxLabels, gz } from './helpers/idx.mjs'
import { smallDigits } from './helpers/small-data.mjs'

const scratch = mkdtempSync(join(tmpdir(), 'siamese-idx-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

let folders = 0
// A folder holding the four files; `files` overrides any of them (Buffer, or null to omit).
function idxFolder (files = {}) {
  const dir = join(scratch, `set${folders++}`)
  mkdirSync(dir)
  const pixels = Buffer.from(Array.from({ length: 3 * 2 * 2 }, (_, i) => i * 20))
  const defaults = {
    'train-images-idx3-ubyte.gz': gz(idxImages({ count: 3, rows: 2, cols: 2, pixels })),
    'train-labels-idx1-ubyte.gz': gz(idxLabels({ count: 3, labels: Buffer.from([2, 0, 1]) })),
    't10k-images-idx3-ubyte': idxImages({ count: 2, rows: 2, cols: 2, pixels: Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]) }),
    't10k-labels-idx1-ubyte': idxLabels({ count: 2, labels: Buffer.from([1, 2]) })
  }
  for (const [name, data] of Object.entries({ ...defaults, ...files })) {
    if (data !== null) writeFileSync(join(dir, name), data)
  }
  return dir
}

async function badFile (t, files, { file, message }) {
  const dir = idxFolder(files)
  const err = await datasets.idx(dir).then(() => null, (e) => e)
  t.type(err, SiameseTorchError, 'rejects with a SiameseTorchError')
  t.equal(err?.code, 'ERR_BAD_FILE')
  t.equal(err?.path, join(dir, file), 'names the file')
  t.equal(err?.message, `${join(dir, file)}: ${message}`)
}

t.test('reads gzipped and raw files, pixels and labels exactly', async (t) => {
  const dir = idxFolder()
  const { train, test, name } = await datasets.idx(dir)
  t.equal(name, dir)
  t.same([train.count, train.width, train.height], [3, 2, 2])
  t.same([...train.images], Array.from({ length: 12 }, (_, i) => i * 20))
  t.same([...train.labels], [2, 0, 1])
  t.same([...test.images], [1, 2, 3, 4, 5, 6, 7, 8])
  t.same(train.classes, ['0', '1', '2'], 'classes named by label when not given')
  t.same(test.classes, train.classes, 'both splits share the class list')
  const named = await datasets.idx(dir, { classes: ['a', 'b', 'c'] })
  t.same(named.test.classes, ['a', 'b', 'c'])
})

// Held natively: the addon gets the store, not bytes (what training and evaluation read).
const heldNatively = (set) => storeOf(set) !== undefined && toNativeData(set).pixels !== undefined && toNativeData(set).images === undefined

t.test('the pixels stay native: images copies them out when read, once; splits keep their store', async (t) => {
  const dir = idxFolder({ 't10k-labels-idx1-ubyte': idxLabels({ count: 2, labels: Buffer.from([1, 0]) }) })
  const { train, test } = await datasets.idx(dir)
  t.ok(heldNatively(train) && heldNatively(test), 'both splits are held natively')
  // The test split's labels stop at 1: it takes the train split's class list, over the same store.
  t.same(test.classes, ['0', '1', '2'], 'the splits share the longer class list')
  t.ok(heldNatively(test), 'and the test split is still held natively')
  t.same([...test.images], [1, 2, 3, 4, 5, 6, 7, 8], 'images reads the bytes of the file')
  t.equal(test.images, test.images, 'the copy is kept')
  t.same(Object.keys(train).sort(), ['classes', 'count', 'height', 'images', 'labels', 'width'], 'the fields of a LabelledImages')
  const cloned = structuredClone(train)
  t.same([...cloned.images], Array.from({ length: 12 }, (_, i) => i * 20), 'a structured clone carries the pixels')
  t.same(datasets.pixelStats(train), datasets.pixelStats(datasets.fromArrays({ images: train.images, labels: train.labels, width: 2, height: 2 })),
    'statistics computed natively are those of the bytes')
  t.throws(() => storeOf(train).select(new Int32Array([3])), {}, 'select refuses an index past the store')
  t.throws(() => storeOf(train).select([0]), {}, 'select takes an Int32Array')

  const digits = await datasets.embedded()
  t.ok(heldNatively(digits.train) && heldNatively(digits.test), 'the embedded digits are held natively')
  const mnist = await datasets.idx(dir, { classes: ['a', 'b', 'c'] })
  t.ok(heldNatively(mnist.train), 'so are sets read with class names (as the catalogue reads them)')
  const split = datasets.splitClasses(digits, { test: ['3', '8'] })
  t.ok(heldNatively(split.train) && heldNatively(split.test), 'splitClasses keeps the pixels native')
  const plain = { name: 'copy', train: copyOf(digits.train), test: copyOf(digits.test) }
  const expected = datasets.splitClasses(plain, { test: ['3', '8'] })
  for (const side of ['train', 'test']) {
    t.ok(Buffer.from(split[side].images).equals(Buffer.from(expected[side].images)), `splitClasses' ${side} images are those of a copy`)
    t.same([...split[side].labels], [...expected[side].labels])
  }
})

/** A set whose pixels are a JavaScript copy of `set`'s. */
function copyOf (set) {
  return datasets.fromArrays({ images: set.images, labels: set.labels, width: set.width, height: set.height, classes: set.classes })
}

t.test('training and evaluating on an IDX set: what a copy in JavaScript gives, bit for bit, and no copy made', async (t) => {
  const small = await smallDigits()
  const dir = join(scratch, 'small-digits')
  mkdirSync(dir)
  for (const [side, prefix] of [['train', 'train'], ['test', 't10k']]) {
    const set = small[side]
    writeFileSync(join(dir, `${prefix}-images-idx3-ubyte.gz`), gz(idxImages({ count: set.count, pixels: Buffer.from(set.images) })))
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte`), idxLabels({ count: set.count, labels: Buffer.from(set.labels) }))
  }
  const held = await datasets.idx(dir, { classes: small.train.classes })
  t.ok(heldNatively(held.train) && heldNatively(held.test))
  const run = async (data, name) => {
    const outDir = join(scratch, name)
    const { model, history } = await train({ data, epochs: 1, seed: 5, threads: 1, outDir })
    const metrics = await model.evaluate(data.test, { ways: 5, shots: 1, episodes: 40, seed: 1 })
    const fingerprint = model.metadata.data_fingerprint
    model.dispose()
    const file = readFileSync(join(outDir, 'model.safetensors'))
    // Everything but the timings.
    const figures = history.map(({ seconds, pairsPerSecond, ...rest }) => rest)
    return { weights: file.subarray(8 + Number(file.readBigUInt64LE(0))), figures, metrics, fingerprint }
  }
  const native = await run({ train: held.train, test: held.test }, 'held')
  t.ok(heldNatively(held.train) && heldNatively(held.test), 'training read the store, not images')
  const copied = await run({ train: small.train, test: small.test }, 'copied')
  t.ok(native.weights.equals(copied.weights), 'bit-identical weights')
  t.same(native.figures, copied.figures, 'the same metrics after the epoch')
  t.same(native.metrics, copied.metrics, 'the same evaluation')
  t.equal(native.fingerprint, copied.fingerprint, 'the same data fingerprint (a resume accepts either)')

  // The 6 MB of the embedded digits never enter JavaScript: not when read, not when a run starts.
  const { default: v8 } = await import('node:v8')
  const { runInNewContext } = await import('node:vm')
  v8.setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc')
  gc()
  const before = process.memoryUsage().arrayBuffers
  const digits = await datasets.embedded()
  const pixelBytes = (digits.train.count + digits.test.count) * 784
  const grown = () => process.memoryUsage().arrayBuffers - before
  gc()
  t.ok(grown() < pixelBytes / 4, `JavaScript holds ${grown()} bytes of the ${pixelBytes} pixel bytes`)
  const model = await createModel({ tower: 'conv4', width: 28, height: 28, embeddingSize: 8 })
  t.teardown(() => model.dispose())
  const controller = new AbortController()
  await t.rejects(model.train({
    data: digits,
    epochs: 1,
    threads: 1,
    saveEvery: 0,
    signal: controller.signal,
    onProgress: (e) => { if (e.type === 'batch') controller.abort() }
  }), { code: 'ABORT_ERR' })
  await model.evaluate(digits.test, { ways: 0 })
  gc()
  t.ok(grown() < pixelBytes / 4, `a run's start and evaluation copy nothing into JavaScript (${grown()} bytes)`)
})

const T = 'train-images-idx3-ubyte.gz'
const L = 'train-labels-idx1-ubyte.gz'

t.test('wrong magic numbers', async (t) => {
  await badFile(t, { [T]: gz(idxLabels({ count: 3 })) }, {
    file: T, message: 'not an IDX images file: magic number 2049, expected 2051 (this is a labels file)'
  })
  await badFile(t, { [L]: gz(idxImages({ count: 3, rows: 2, cols: 2 })) }, {
    file: L, message: 'not an IDX labels file: magic number 2051, expected 2049 (this is an images file)'
  })
  await badFile(t, { [T]: gz(idxImages({ magic: 0x12345678, count: 3 })) }, {
    file: T, message: 'not an IDX images file: magic number 305419896, expected 2051'
  })
  await badFile(t, { [T]: gz(gz(idxImages({ count: 3, rows: 2, cols: 2 }))) }, {
    file: T, message: 'not an IDX images file: magic number 529205248, expected 2051 (gzip data inside gzip?)'
  })
})

t.test('headers that are cut short, empty or absurd', async (t) => {
  await badFile(t, { [T]: Buffer.alloc(0) }, { file: T, message: 'truncated header: file ends before the magic number' })
  await badFile(t, { [T]: gz(idxImages({ count: 3, rows: 2, cols: 2 }).subarray(0, 10)) }, {
    file: T, message: 'truncated header: file ends before the row count'
  })
  await badFile(t, { [T]: gz(idxImages({ count: 0, rows: 2, cols: 2 })) }, { file: T, message: 'holds no images (count 0)' })
  await badFile(t, { [T]: gz(idxImages({ count: 3, rows: 0, cols: 2, pixels: Buffer.alloc(0) })) }, {
    file: T, message: 'image size 0x2 is empty'
  })
  await badFile(t, { [L]: gz(idxLabels({ count: 0, labels: Buffer.alloc(0) })) }, { file: L, message: 'holds no labels (count 0)' })
})

t.test('dimensions whose product overflows or exceeds the limit are refused before allocating', async (t) => {
  const max = 0xffffffff
  await badFile(t, { [T]: gz(idxImages({ count: max, rows: max, cols: max, pixels: Buffer.alloc(4) })) }, {
    file: T, message: `header claims ${max} images of ${max}x${max} pixels, more than the 4 GiB limit`
  })
  // 10^12 pixels claimed by a file of a few bytes: refused at once, nothing allocated.
  const before = process.memoryUsage().rss
  await badFile(t, { [T]: idxImages({ count: 1_000_000, rows: 1000, cols: 1000, pixels: Buffer.alloc(16) }) }, {
    file: T, message: 'header claims 1000000 images of 1000x1000 pixels, more than the 4 GiB limit'
  })
  t.ok(process.memoryUsage().rss - before < 256 * 1024 * 1024, 'memory stays bounded')
})

t.test('payloads must be exactly as long as the header says', async (t) => {
  await badFile(t, { [T]: gz(idxImages({ count: 3, rows: 2, cols: 2, pixels: Buffer.alloc(11) })) }, {
    file: T, message: 'truncated: the header promises 12 bytes of pixels but the file holds 11'
  })
  // A header claiming 2 GiB over a tiny file: reports what is there, allocates only that.
  await badFile(t, { [T]: idxImages({ count: 2048, rows: 1024, cols: 1024, pixels: Buffer.alloc(100) }) }, {
    file: T, message: 'truncated: the header promises 2147483648 bytes of pixels but the file holds 100'
  })
  await badFile(t, { [T]: gz(idxImages({ count: 3, rows: 2, cols: 2, pixels: Buffer.alloc(13) })) }, {
    file: T, message: 'padded: more data after the 12 bytes of pixels that the header promises'
  })
  await badFile(t, { [L]: gz(idxLabels({ count: 3, labels: Buffer.from([1, 2]) })) }, {
    file: L, message: 'truncated: the header promises 3 bytes of labels but the file holds 2'
  })
  await badFile(t, { [L]: idxLabels({ count: 3, labels: Buffer.from([1, 2, 3, 4]) }) }, {
    file: L, message: 'padded: more data after the 3 bytes of labels that the header promises'
  })
})

t.test('corrupt compressed data', async (t) => {
  const good = gz(idxImages({ count: 50, rows: 28, cols: 28, pixels: Buffer.from(Array.from({ length: 50 * 784 }, (_, i) => (i * 7919) % 251)) }))
  const cut = good.subarray(0, Math.floor(good.length / 2))
  const dir = idxFolder({ [T]: cut, [L]: gz(idxLabels({ count: 50 })) })
  const err = await datasets.idx(dir).then(() => null, (e) => e)
  t.equal(err.code, 'ERR_BAD_FILE')
  t.match(err.message, new RegExp(`^${join(dir, T)}: (truncated|corrupt)`), err.message)

  const flipped = Buffer.from(good)
  for (let i = 20; i < flipped.length - 8; i += 97) flipped[i] ^= 0x5a
  const dir2 = idxFolder({ [T]: flipped, [L]: gz(idxLabels({ count: 50 })) })
  const err2 = await datasets.idx(dir2).then(() => null, (e) => e)
  t.equal(err2.code, 'ERR_BAD_FILE')
  t.match(err2.message, /corrupt or unreadable data|truncated/, err2.message)
})

t.test('gzip: bytes after the compressed data are refused; several gzip members are one file', async (t) => {
  const pixels = Buffer.from(Array.from({ length: 3 * 2 * 2 }, (_, i) => i * 20))
  const images = idxImages({ count: 3, rows: 2, cols: 2, pixels })
  const trainImages = 'train-images-idx3-ubyte.gz'
  // zlib's own reader stops at the end of the gzip stream and reads such a file as whole.
  await badFile(t, { [trainImages]: Buffer.concat([gz(images), Buffer.from('garbage')]) }, {
    file: trainImages, message: '7 trailing byte(s) after the gzip data (the file holds something else after its compressed data)'
  })
  await badFile(t, { [trainImages]: Buffer.concat([gz(images), Buffer.alloc(1)]) }, {
    file: trainImages, message: '1 trailing byte(s) after the gzip data (the file holds something else after its compressed data)'
  })
  // Two members (as `cat a.gz b.gz` makes, and `gzip -d` reads): the file is their concatenation.
  const split = idxFolder({ [trainImages]: Buffer.concat([gz(images.subarray(0, 10)), gz(images.subarray(10))]) })
  const { train } = await datasets.idx(split)
  t.same([...train.images], [...pixels], 'two gzip members read as one')
})

t.test('images and labels must agree, labels must be in range', async (t) => {
  const dir = idxFolder({ [L]: gz(idxLabels({ count: 4 })) })
  const err = await datasets.idx(dir).then(() => null, (e) => e)
  t.equal(err.code, 'ERR_BAD_FILE')
  t.equal(err.message, `${join(dir, L)}: holds 4 labels but ${join(dir, T)} holds 3 images`)

  const dir2 = idxFolder()
  const err2 = await datasets.idx(dir2, { classes: ['a', 'b'] }).then(() => null, (e) => e)
  t.equal(err2.code, 'ERR_BAD_FILE')
  t.equal(err2.message, `${join(dir2, L)}: label 2 at index 0 is out of range (2 classes)`)
})

t.test('missing files, folders in place of files, not a folder', async (t) => {
  const dir = idxFolder({ [T]: null, 't10k-labels-idx1-ubyte': null })
  const err = await datasets.idx(dir).then(() => null, (e) => e)
  t.equal(err.code, 'ERR_BAD_FILE')
  t.equal(err.message, `${dir} lacks train-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]`)

  const dir2 = idxFolder({ [T]: null })
  mkdirSync(join(dir2, T))
  const err2 = await datasets.idx(dir2).then(() => null, (e) => e)
  t.equal(err2.message, `${join(dir2, T)}: is a directory, not an IDX file`)
  t.equal(err2.path, join(dir2, T))

  const err3 = await datasets.idx(join(scratch, 'nope')).then(() => null, (e) => e)
  t.equal(err3.code, 'ERR_BAD_FILE')
  t.equal(err3.message, `${join(scratch, 'nope')} is not a folder`)
})

t.test('arguments are checked before any native call', async (t) => {
  await t.rejects(datasets.idx(42), { code: 'ERR_INVALID_ARG', message: 'Expected a non-empty string for dir but received number 42' })
  await t.rejects(datasets.idx(scratch, { classes: [] }), {
    code: 'ERR_INVALID_ARG', message: 'Expected a non-empty array of class names for classes but received an array of length 0'
  })
  await t.rejects(datasets.idx(scratch, { clases: ['a'] }), { code: 'ERR_INVALID_ARG' })
})

t.test('errors carry the caller\'s stack', async (t) => {
  const err = await datasets.idx(idxFolder({ [T]: Buffer.alloc(0) })).then(() => null, (e) => e)
  t.match(err.stack, /^SiameseTorchError \[ERR_BAD_FILE\]: /)
  t.match(err.stack, /idx\.test\.mjs/, 'the stack points at this test file')
})
