// The native IDX reader: good files in both forms, and every malformed case with its exact error.
import t from 'tap'
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { datasets, SiameseTorchError } from 'siamese-torch'
import { idxImages, idxLabels, gz } from './helpers/idx.mjs'

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
