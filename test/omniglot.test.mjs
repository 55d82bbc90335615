// Omniglot from archives made here, of its layout (<top>/<alphabet>/<character>/*.png, 105 x 105
// one-bit drawings), served by the local HTTP server: downloads, unzipping once, the splits and
// their own classes, and every way an archive is refused (unsafe entries, sizes, truncation,
// corruption) with nothing left behind. Never the network.
import t from 'tap'
import { createHash } from 'node:crypto'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { deflateRawSync } from 'node:zlib'
import sharp from 'sharp'
import yazl from 'yazl'
import { choices, datasets, SiameseTorchError } from 'siamese-torch'
import { loadOmniglot } from '../dist/datasets/omniglot.js'
import { resolveData } from '../dist/options.js'
import { startServer } from './helpers/server.mjs'
import { random } from './helpers/random.mjs'

const md5 = (b) => createHash('md5').update(b).digest('hex')
const scratch = mkdtempSync(join(tmpdir(), 'siamese-omniglot-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

const SIDE = 105
const DRAWINGS = 3

/** A drawing: white, with black dots where the seeded generator says. */
function drawing (next) {
  const pixels = Buffer.alloc(SIDE * SIDE, 255)
  for (let i = 0; i < pixels.length; i++) if (next() < 0.1) pixels[i] = 0
  return pixels
}

/** PNG bytes of a drawing: one-bit palette as Omniglot's, or 8-bit grey. */
function png (pixels, oneBit) {
  const image = sharp(pixels, { raw: { width: SIDE, height: SIDE, channels: 1 } }).toColourspace('b-w')
  return (oneBit ? image.png({ palette: true, colours: 2 }) : image.png()).toBuffer()
}

/**
 * A split of `alphabets` ({ name: characters }): its PNG entries under `top`, and what reading it
 * must give (classes sorted, images in class then file order).
 */
async function makeSplit (top, alphabets, seed) {
  const next = random(seed)
  const entries = []
  const byClass = new Map()
  for (const [alphabet, characters] of Object.entries(alphabets)) {
    for (let c = 1; c <= characters; c++) {
      const character = `character${String(c).padStart(2, '0')}`
      const drawings = []
      for (let k = 1; k <= DRAWINGS; k++) {
        const pixels = drawing(next)
        const name = `${top}/${alphabet}/${character}/${String(seed * 100 + c).padStart(4, '0')}_${String(k).padStart(2, '0')}.png`
        entries.push({ name, data: await png(pixels, entries.length !== 1) })
        drawings.push(pixels)
      }
      byClass.set(`${alphabet}/${character}`, drawings)
    }
  }
  const classes = [...byClass.keys()].sort()
  const labels = classes.flatMap((name, label) => byClass.get(name).map(() => label))
  const images = Buffer.concat(classes.flatMap((name) => byClass.get(name)))
  return { top, entries, classes, labels, images }
}

/** A zip written by yazl: `entries` of { name, data } or { dir }; `store` keeps data uncompressed. */
function zip (entries, { store = false } = {}) {
  const z = new yazl.ZipFile()
  for (const e of entries) {
    if (e.dir) z.addEmptyDirectory(e.dir)
    else z.addBuffer(e.data, e.name, { compress: !store, mtime: new Date(2020, 0, 1) })
  }
  z.end()
  return new Promise((resolve, reject) => {
    const chunks = []
    z.outputStream.on('data', (c) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject)
  })
}

/**
 * A zip written byte by byte, for what yazl refuses to write: unsafe names, symbolic links,
 * sizes that lie. Each entry: { name, data, size? (declared uncompressed size), mode? (Unix mode) }.
 */
function rawZip (entries) {
  const locals = []
  const centrals = []
  let offset = 0
  for (const { name, data, size, mode = 0o100644 } of entries) {
    const nameBytes = Buffer.from(name, 'utf8')
    const packed = deflateRawSync(data)
    const crc = crc32(data)
    const local = Buffer.alloc(30)
    local.writeUInt32LE(0x04034b50, 0)
    local.writeUInt16LE(20, 4)
    local.writeUInt16LE(0x800, 6)
    local.writeUInt16LE(8, 8)
    local.writeUInt16LE(0x21, 12)
    local.writeUInt32LE(crc, 14)
    local.writeUInt32LE(packed.length, 18)
    local.writeUInt32LE(size ?? data.length, 22)
    local.writeUInt16LE(nameBytes.length, 26)
    const central = Buffer.alloc(46)
    central.writeUInt32LE(0x02014b50, 0)
    central.writeUInt16LE((3 << 8) | 20, 4) // made by Unix
    central.writeUInt16LE(20, 6)
    central.writeUInt16LE(0x800, 8)
    central.writeUInt16LE(8, 10)
    central.writeUInt16LE(0x21, 14)
    central.writeUInt32LE(crc, 16)
    central.writeUInt32LE(packed.length, 20)
    central.writeUInt32LE(size ?? data.length, 24)
    central.writeUInt16LE(nameBytes.length, 28)
    central.writeUInt32LE((mode << 16) >>> 0, 38)
    central.writeUInt32LE(offset, 42)
    locals.push(local, nameBytes, packed)
    centrals.push(central, nameBytes)
    offset += local.length + nameBytes.length + packed.length
  }
  const directory = Buffer.concat(centrals)
  const end = Buffer.alloc(22)
  end.writeUInt32LE(0x06054b50, 0)
  end.writeUInt16LE(entries.length, 8)
  end.writeUInt16LE(entries.length, 10)
  end.writeUInt32LE(directory.length, 12)
  end.writeUInt32LE(offset, 16)
  return Buffer.concat([...locals, directory, end])
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})
function crc32 (bytes) {
  let c = 0xffffffff
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

const background = await makeSplit('images_background', { Latin: 3, Greek: 2 }, 1)
const evaluation = await makeSplit('images_evaluation', { Atlantean: 2, Mongolian: 2 }, 2)
const somePng = background.entries[0].data
// Besides the drawings: folders, and files the reader must leave alone.
const backgroundZip = await zip([
  { dir: 'images_background/' }, { dir: 'images_background/Latin/' },
  ...background.entries,
  { name: 'images_background/README.txt', data: Buffer.from('not a drawing') },
  { name: 'images_background/Latin/character01/notes.txt', data: Buffer.from('nor this') },
  { name: 'images_background/Latin/stray.png', data: somePng },
  { name: '__MACOSX/images_background/Latin/character01/._0101_01.png', data: Buffer.from('resource fork') },
  { name: 'elsewhere/Latin/character01/0101_01.png', data: somePng }
])
const evaluationZip = await zip(evaluation.entries)
const truncatedZip = backgroundZip.subarray(0, Math.floor(backgroundZip.length / 2))
const traversalZip = rawZip([
  { name: 'traversal/Latin/character01/0101_01.png', data: somePng },
  { name: '../evil.png', data: somePng }
])

const served = {
  'images_background.zip': backgroundZip,
  'images_evaluation.zip': evaluationZip,
  'truncated.zip': truncatedZip,
  'traversal.zip': traversalZip
}
const server = await startServer(served)
t.teardown(() => server.close())

/** A catalogue of the served archives: `train` names the archive of the training split. */
const catalogue = (train = 'images_background.zip', mirrors = [server.url('good')]) => ({
  name: 'omniglot',
  folder: 'omniglot',
  mirrors,
  archives: {
    train: { file: train, md5: md5(served[train]) },
    test: { file: 'images_evaluation.zip', md5: md5(evaluationZip) }
  }
})

let dirs = 0
const freshDir = () => join(scratch, `root${dirs++}`)
const fast = { retries: 2, timeoutMs: 2000, backoffMs: 10 }
const leftovers = (dir) => existsSync(dir) ? readdirSync(dir).sort() : []
/** Every path under `dir` whose name contains `evil`. */
const evilFiles = (dir) => readdirSync(dir, { recursive: true }).filter((p) => basename(p).includes('evil'))

function checkSplits (t, set) {
  t.equal(set.name, 'omniglot')
  for (const [split, made] of [[set.train, background], [set.test, evaluation]]) {
    t.same([split.count, split.width, split.height, split.channels ?? 1], [made.labels.length, SIDE, SIDE, 1])
    t.same(split.classes, made.classes, 'its own classes, sorted')
    t.same([...split.labels], made.labels)
    t.ok(Buffer.from(split.images).equals(made.images), 'the pixels of the PNGs, white background and black strokes')
  }
  t.ok(set.stats.mean[0] > 0.85 && set.stats.mean[0] < 0.95, `stats of the training drawings (mean ${set.stats.mean[0]})`)
}

let downloadedRoot
t.test('downloads both archives, unzips them once and reads each split with its own classes', async (t) => {
  const root = downloadedRoot = freshDir()
  const progress = []
  const set = await loadOmniglot(catalogue(), { root, download: true, ...fast, onProgress: (p) => progress.push(p.file) })
  checkSplits(t, set)
  t.same(set.train.classes, ['Greek/character01', 'Greek/character02', 'Latin/character01', 'Latin/character02', 'Latin/character03'])
  t.same(set.test.classes, ['Atlantean/character01', 'Atlantean/character02', 'Mongolian/character01', 'Mongolian/character02'])
  t.equal(set.source, undefined, 'not read by name from another root')
  t.ok(progress.includes('images_background.zip') && progress.includes('images_evaluation.zip'))
  t.same(leftovers(root), ['images_background', 'images_background.zip', 'images_evaluation', 'images_evaluation.zip'],
    'the archives and their folders, no temporary folder')
  t.same(leftovers(join(root, 'images_background')), ['Greek', 'Latin'], 'only <alphabet>/<character>/*.png taken')
  t.same(leftovers(join(root, 'images_background', 'Latin')), ['character01', 'character02', 'character03'])
  t.same(leftovers(join(root, 'images_background', 'Latin', 'character01')), ['0101_01.png', '0101_02.png', '0101_03.png'])
})

t.test('a second call reads the unzipped folders: no request, the archives not even read', async (t) => {
  const root = downloadedRoot
  const hits = [...server.hits.values()].reduce((a, b) => a + b, 0)
  writeFileSync(join(root, 'images_background.zip'), 'garbage')
  rmSync(join(root, 'images_evaluation.zip'))
  const set = await loadOmniglot(catalogue(), { root, download: true, ...fast })
  checkSplits(t, set)
  t.equal([...server.hits.values()].reduce((a, b) => a + b, 0), hits, 'no request')
  const offline = await loadOmniglot(catalogue('images_background.zip', ['http://127.0.0.1:9/']), { root })
  t.equal(offline.train.count, background.labels.length)
})

t.test('a wrong checksum is refused and the next mirror used', async (t) => {
  const root = freshDir()
  const set = await loadOmniglot(catalogue('images_background.zip', [server.url('wrong'), server.url('good')]), { root, download: true, ...fast })
  checkSplits(t, set)
  t.equal(server.hits.get('/wrong/images_background.zip'), 1, 'not retried on the mirror that served wrong bytes')
  t.equal(server.hits.get('/wrong/images_evaluation.zip'), 1)
})

t.test('wrong bytes from every mirror: ERR_CHECKSUM, nothing kept', async (t) => {
  const root = freshDir()
  const err = await loadOmniglot(catalogue('images_background.zip', [server.url('wrong')]), { root, download: true, ...fast }).then(() => null, (e) => e)
  t.type(err, SiameseTorchError)
  t.equal(err.code, 'ERR_CHECKSUM')
  t.match(err.message, `expected ${md5(backgroundZip)}`)
  t.same(leftovers(root), [])
})

t.test('a downloaded archive with an entry outside its folder is refused; nothing is written, the archive removed', async (t) => {
  const root = freshDir()
  const err = await loadOmniglot(catalogue('traversal.zip'), { root, download: true, ...fast }).then(() => null, (e) => e)
  t.equal(err.code, 'ERR_BAD_FILE')
  t.equal(err.path, join(root, 'traversal.zip'))
  t.match(err.message, '../evil.png')
  t.same(leftovers(root), ['images_evaluation.zip'], 'no folder, no temporary folder, and the archive removed')
  t.same(evilFiles(scratch), [], 'nothing written outside the root')
})

t.test('unsafe entries in an archive already there: refused naming the entry, the archive kept', async (t) => {
  const cases = [
    ['a .. segment', 'unsafe/Latin/character01/../../../../evil.png', {}],
    ['an absolute path', `${scratch}/evil-absolute.png`, {}],
    ['a drive letter', 'C:/evil.png', {}],
    ['a backslash', 'unsafe\\..\\evil.png', {}],
    ['a symbolic link', 'unsafe/Latin/character01/evil-link.png', { mode: 0o120777, data: Buffer.from('../../../../evil-target.png') }]
  ]
  for (const [what, name, extra] of cases) {
    const root = freshDir()
    mkdirSync(root)
    const archive = rawZip([
      { name: 'unsafe/Latin/character01/0101_01.png', data: somePng },
      { name, data: somePng, ...extra }
    ])
    writeFileSync(join(root, 'unsafe.zip'), archive)
    writeFileSync(join(root, 'images_evaluation.zip'), evaluationZip)
    const err = await loadOmniglot({ ...catalogue(), archives: { ...catalogue().archives, train: { file: 'unsafe.zip', md5: md5(archive) } } },
      { root, download: true, mirrors: ['http://127.0.0.1:9/'], ...fast }).then(() => null, (e) => e)
    t.equal(err?.code, 'ERR_BAD_FILE', what)
    t.match(err?.message, name, `${what}: the entry named`)
    t.match(err?.message, 'it was there before this call, so it is kept', what)
    t.same(leftovers(root), ['images_evaluation.zip', 'unsafe.zip'], `${what}: nothing unzipped, no temporary folder`)
  }
  t.same(evilFiles(scratch), [], 'nothing written outside the roots')
})

t.test('the size cap: declared sizes past it are refused before anything inflates', async (t) => {
  const root = freshDir()
  mkdirSync(root)
  writeFileSync(join(root, 'images_background.zip'), backgroundZip)
  writeFileSync(join(root, 'images_evaluation.zip'), evaluationZip)
  const err = await loadOmniglot(catalogue(), { root, maxUncompressedBytes: 1000 }).then(() => null, (e) => e)
  t.equal(err.code, 'ERR_BAD_FILE')
  t.match(err.message, 'its entries declare more than 1000 bytes uncompressed (the cap, maxUncompressedBytes)')
  t.same(leftovers(root), ['images_background.zip', 'images_evaluation.zip'])
  const set = await loadOmniglot(catalogue(), { root, maxUncompressedBytes: 1_000_000 })
  t.equal(set.train.count, background.labels.length, 'under the cap it unzips')
})

t.test('a header that lies about its size cannot bomb: refused as it inflates, nothing left', async (t) => {
  for (const cap of [undefined, 10_000]) {
    const root = freshDir()
    mkdirSync(root)
    const bomb = rawZip([
      { name: 'bomb/Latin/character01/0101_01.png', data: somePng },
      { name: 'bomb/Latin/character01/0101_02.png', data: Buffer.alloc(20_000_000), size: 100 }
    ])
    t.ok(bomb.length < 100_000, `${bomb.length} bytes that inflate to 20 MB`)
    writeFileSync(join(root, 'bomb.zip'), bomb)
    writeFileSync(join(root, 'images_evaluation.zip'), evaluationZip)
    const options = cap === undefined ? { root } : { root, maxUncompressedBytes: cap }
    const err = await loadOmniglot({ ...catalogue(), archives: { ...catalogue().archives, train: { file: 'bomb.zip', md5: md5(bomb) } } }, options)
      .then(() => null, (e) => e)
    t.equal(err?.code, 'ERR_BAD_FILE')
    t.match(err?.message, 'bomb/Latin/character01/0101_02.png')
    t.match(err?.message, /inflates past|too many bytes/)
    t.same(leftovers(root), ['bomb.zip', 'images_evaluation.zip'], 'no folder, no temporary folder')
  }
})

t.test('a truncated archive is refused, and nothing is left in the cache', async (t) => {
  const root = freshDir()
  const err = await loadOmniglot(catalogue('truncated.zip'), { root, download: true, ...fast }).then(() => null, (e) => e)
  t.equal(err.code, 'ERR_BAD_FILE')
  t.match(err.message, `${join(root, 'truncated.zip')}: not a readable zip archive`)
  t.same(leftovers(root), ['images_evaluation.zip'], 'the truncated archive removed, nothing unzipped from it')
})

t.test('a corrupt entry found while unzipping: refused, and no part of the folder is left', async (t) => {
  const root = freshDir()
  mkdirSync(root)
  const stored = await zip(background.entries, { store: true })
  const corrupt = Buffer.from(stored)
  // The last drawing's data, stored as is: one byte changed there changes its CRC-32.
  const last = corrupt.indexOf(Buffer.from(background.entries.at(-1).name)) + background.entries.at(-1).name.length
  const central = corrupt.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]))
  t.ok(last < central, 'the last local name found, before the central directory')
  corrupt[last + 60] ^= 0xff
  writeFileSync(join(root, 'images_background.zip'), corrupt)
  writeFileSync(join(root, 'images_evaluation.zip'), evaluationZip)
  const err = await loadOmniglot(catalogue(), { root }).then(() => null, (e) => e)
  t.equal(err.code, 'ERR_BAD_FILE')
  t.match(err.message, `the entry "${background.entries.at(-1).name}" is corrupt`)
  t.same(leftovers(root), ['images_background.zip', 'images_evaluation.zip'], 'the drawings unzipped before it were removed')
})

t.test('without download: true, no network, and the message says how', async (t) => {
  const root = freshDir()
  const err = await datasets.omniglot({ root }).then(() => null, (e) => e)
  t.equal(err.code, 'ERR_BAD_FILE')
  t.equal(err.path, root)
  t.match(err.message, `omniglot is not in ${root}: missing images_background.zip, images_evaluation.zip. Pass { download: true }`)
  t.match(err.message, 'https://raw.githubusercontent.com/brendenlake/omniglot/master/python/')
  // One split unzipped already: only the other archive is missing.
  cpSync(join(downloadedRoot, 'images_background'), join(root, 'images_background'), { recursive: true })
  const one = await datasets.omniglot({ root }).then(() => null, (e) => e)
  t.match(one.message, `omniglot is not in ${root}: missing images_evaluation.zip.`)
})

t.test("by name: the default folder's set is read again as 'omniglot', by datasets and by train's data", async (t) => {
  const data = join(scratch, 'cache')
  mkdirSync(join(data, 'omniglot'), { recursive: true })
  for (const top of ['images_background', 'images_evaluation']) {
    cpSync(join(downloadedRoot, top), join(data, 'omniglot', top), { recursive: true })
  }
  const before = process.env.SIAMESE_TORCH_DATA
  process.env.SIAMESE_TORCH_DATA = data
  t.teardown(() => {
    if (before === undefined) delete process.env.SIAMESE_TORCH_DATA
    else process.env.SIAMESE_TORCH_DATA = before
  })
  const set = await datasets.omniglot()
  t.equal(set.source, 'omniglot')
  checkSplits(t, set)
  const resolved = await resolveData('omniglot', false)
  t.equal(resolved.source, 'omniglot')
  t.same(resolved.test.classes, evaluation.classes)
  t.ok(choices.data.includes('omniglot'))
})

t.test('the catalogue, the alphabet of a class, option checks', async (t) => {
  const { omniglot } = datasets.catalogue
  t.same(omniglot.archives, {
    train: { file: 'images_background.zip', md5: '68d2efa1b9178cc56df9314c21c6e718' },
    test: { file: 'images_evaluation.zip', md5: '6b91aef0f799c5bb55b94e3f2daec811' }
  })
  t.same(omniglot.mirrors, ['https://raw.githubusercontent.com/brendenlake/omniglot/master/python/',
    'https://github.com/brendenlake/omniglot/raw/master/python/'])
  t.equal(datasets.alphabetOf('Latin/character01'), 'Latin')
  t.equal(datasets.alphabetOf('Japanese_(hiragana)/character13'), 'Japanese_(hiragana)')
  t.equal(datasets.alphabetOf('plain'), 'plain')
  t.throws(() => datasets.alphabetOf(''), { code: 'ERR_INVALID_ARG', message: 'Expected a non-empty string for className but received string ""' })
  await t.rejects(datasets.omniglot({ maxUncompressedBytes: 0 }),
    { code: 'ERR_INVALID_ARG', message: 'Expected an integer >= 1 for maxUncompressedBytes but received number 0' })
  await t.rejects(datasets.omniglot({ download: 'yes' }), { code: 'ERR_INVALID_ARG', message: 'Expected a boolean for download but received string "yes"' })
  await t.rejects(datasets.omniglot({ width: 28 }), { code: 'ERR_INVALID_ARG', message: /unknown option "width"/ })
})
