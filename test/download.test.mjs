// Verified downloads against a local HTTP server: good files, 404, truncated bodies, wrong bytes,
// a server that stalls, a flaky one, redirects, aborts. Never the network.
import t from 'tap'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, mkdirSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { datasets, SiameseTorchError } from 'siamese-torch'
import { downloadFile } from '../dist/datasets/download.js'
import { loadCatalogue } from '../dist/datasets/catalog.js'
import { startServer } from './helpers/server.mjs'
import { idxImages, idxLabels, gz } from './helpers/idx.mjs'

const md5 = (b) => createHash('md5').update(b).digest('hex')
const scratch = mkdtempSync(join(tmpdir(), 'siamese-dl-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

// A small but real IDX data set to serve.
const files = {
  'train-images-idx3-ubyte.gz': gz(idxImages({ count: 20, rows: 4, cols: 4, pixels: Buffer.from(Array.from({ length: 320 }, (_, i) => i % 256)) })),
  'train-labels-idx1-ubyte.gz': gz(idxLabels({ count: 20, labels: Buffer.from(Array.from({ length: 20 }, (_, i) => i % 2)) })),
  't10k-images-idx3-ubyte.gz': gz(idxImages({ count: 4, rows: 4, cols: 4 })),
  't10k-labels-idx1-ubyte.gz': gz(idxLabels({ count: 4, labels: Buffer.from([0, 1, 0, 1]) }))
}
const FILE = 'train-images-idx3-ubyte.gz'
const server = await startServer(files)
t.teardown(() => server.close())

let dirs = 0
const freshDir = () => join(scratch, `d${dirs++}`)
const fast = { retries: 2, timeoutMs: 300, backoffMs: 10 }
const leftovers = (dir) => existsSync(dir) ? readdirSync(dir) : []

t.test('a good mirror: saved under its name, progress reported', async (t) => {
  const dir = freshDir()
  const progress = []
  const file = await downloadFile(FILE, md5(files[FILE]), dir, { mirrors: [server.url('good')], ...fast, onProgress: (p) => progress.push(p) })
  t.equal(file, join(dir, FILE))
  t.ok(readFileSync(file).equals(files[FILE]))
  t.same(leftovers(dir), [FILE], 'no temporary file left')
  const last = progress.at(-1)
  t.same({ file: last.file, received: last.received, total: last.total, attempt: last.attempt },
    { file: FILE, received: files[FILE].length, total: files[FILE].length, attempt: 1 })
})

t.test('404 moves on to the next mirror at once; redirects are followed', async (t) => {
  const dir = freshDir()
  await downloadFile(FILE, md5(files[FILE]), dir, { mirrors: [server.url('missing'), server.url('redirect')], ...fast })
  t.ok(readFileSync(join(dir, FILE)).equals(files[FILE]))
  t.equal(server.hits.get(`/missing/${FILE}`), 1, 'a 404 is not retried')
})

t.test('a flaky server succeeds on retry', async (t) => {
  const dir = freshDir()
  await downloadFile(FILE, md5(files[FILE]), dir, { mirrors: [server.url('flaky')], ...fast })
  t.equal(server.hits.get(`/flaky/${FILE}`), 2)
  t.same(leftovers(dir), [FILE])
})

t.test('truncated bodies are retried, then reported; nothing is kept', async (t) => {
  const dir = freshDir()
  const err = await downloadFile(FILE, md5(files[FILE]), dir, { mirrors: [server.url('truncated')], ...fast }).then(() => null, (e) => e)
  t.type(err, SiameseTorchError)
  t.equal(err.code, 'ERR_DOWNLOAD')
  t.equal(server.hits.get(`/truncated/${FILE}`), 2, 'tried `retries` times')
  t.match(err.message, /connection closed after \d+ of \d+ bytes|truncated: \d+ of \d+ bytes/)
  t.same(leftovers(dir), [], 'no file, no temporary file')
})

t.test('wrong bytes: ERR_CHECKSUM, nothing cached', async (t) => {
  const dir = freshDir()
  const err = await downloadFile(FILE, md5(files[FILE]), dir, { mirrors: [server.url('wrong')], ...fast }).then(() => null, (e) => e)
  t.equal(err.code, 'ERR_CHECKSUM')
  t.match(err.message, `${FILE}: wrong checksum from every mirror that served it; nothing was saved.`)
  t.match(err.message, `expected ${md5(files[FILE])}`)
  t.equal(server.hits.get(`/wrong/${FILE}`), 1, 'a wrong checksum is not retried on the same mirror')
  t.same(leftovers(dir), [])
})

t.test('a server that stalls times out', async (t) => {
  const dir = freshDir()
  const started = Date.now()
  const err = await downloadFile(FILE, md5(files[FILE]), dir, { mirrors: [server.url('slow')], ...fast, retries: 1 }).then(() => null, (e) => e)
  t.equal(err.code, 'ERR_DOWNLOAD')
  t.match(err.message, 'no data for 300 ms after 10 of')
  t.ok(Date.now() - started < 5000, 'gives up promptly')
  t.same(leftovers(dir), [])
})

t.test('an abort stops the download and leaves nothing', async (t) => {
  const dir = freshDir()
  const controller = new AbortController()
  setTimeout(() => controller.abort(), 50)
  const err = await downloadFile(FILE, md5(files[FILE]), dir, { mirrors: [server.url('slow')], retries: 3, timeoutMs: 10_000, backoffMs: 10, signal: controller.signal }).then(() => null, (e) => e)
  t.equal(err.code, 'ABORT_ERR')
  t.same(leftovers(dir), [])
})

// A catalogue of the served files, to drive the whole data-set path.
const served = {
  name: 'served',
  folder: 'served',
  mirrors: [server.url('good')],
  classes: ['even', 'odd'],
  md5: {
    trainImages: md5(files['train-images-idx3-ubyte.gz']),
    trainLabels: md5(files['train-labels-idx1-ubyte.gz']),
    testImages: md5(files['t10k-images-idx3-ubyte.gz']),
    testLabels: md5(files['t10k-labels-idx1-ubyte.gz'])
  }
}

t.test('a whole data set: downloads the missing files, then loads them; later loads stay offline', async (t) => {
  const root = freshDir()
  mkdirSync(root)
  copyFileSync(join(scratch, 'd0', FILE), join(root, FILE)) // one file already there
  const before = server.hits.get(`/good/${FILE}`)
  const set = await loadCatalogue(served, { root, download: true, ...fast })
  t.same([set.train.count, set.test.count, set.train.width], [20, 4, 4])
  t.same(set.train.classes, ['even', 'odd'])
  t.equal(server.hits.get(`/good/${FILE}`), before, 'the file already there was not fetched again')
  t.same(leftovers(root).sort(), Object.keys(files).sort())
  const offline = await loadCatalogue({ ...served, mirrors: ['http://127.0.0.1:9/'] }, { root, download: true, ...fast })
  t.equal(offline.train.count, 20)
})

t.test('offline or every mirror failing: names the files and where to put them', async (t) => {
  const root = freshDir()
  const err = await loadCatalogue(served, { root, download: true, ...fast, mirrors: [server.url('missing'), 'http://127.0.0.1:9/'] }).then(() => null, (e) => e)
  t.equal(err.code, 'ERR_DOWNLOAD')
  t.equal(err.path, root)
  t.match(err.message, `Offline, or every mirror failed. Download these files by hand and put them in ${root}:`)
  for (const name of Object.keys(files)) t.match(err.message, name)
  t.match(err.message, /ECONNREFUSED|connect/)
})

t.test('without download: true, no network, and the message says how', async (t) => {
  const root = freshDir()
  const err = await datasets.mnist({ root }).then(() => null, (e) => e)
  t.equal(err.code, 'ERR_BAD_FILE')
  t.match(err.message, `mnist is not in ${root}: missing train-images-idx3-ubyte.gz`)
  t.match(err.message, 'Pass { download: true }')
})

t.test("Debian's Fashion-MNIST is not byte-identical to the published .gz files", { skip: !existsSync('/usr/share/datasets/fashion-mnist') && 'no dataset-fashion-mnist' }, async (t) => {
  // Debian recompressed the files (the gzip header lost the original file name: each is shorter
  // by exactly that name), so the published MD5s refuse them: the checksum path on real data.
  const debian = '/usr/share/datasets/fashion-mnist'
  const mirror = await startServer(Object.fromEntries(readdirSync(debian).map((f) => [f, readFileSync(join(debian, f))])))
  t.teardown(() => mirror.close())
  const root = freshDir()
  const err = await datasets.fashionMnist({ root, download: true, mirrors: [mirror.url('good')], ...fast }).then(() => null, (e) => e)
  t.equal(err.code, 'ERR_CHECKSUM')
  t.match(err.message, `expected ${datasets.catalogue.fashionMnist.md5.trainImages}`)
  t.same(leftovers(root), [], 'nothing cached')
})

t.test('option checks', async (t) => {
  await t.rejects(datasets.mnist({ download: 'yes' }), { code: 'ERR_INVALID_ARG', message: 'Expected a boolean for download but received string "yes"' })
  await t.rejects(datasets.mnist({ mirrors: [] }), { code: 'ERR_INVALID_ARG', message: 'Expected a non-empty array of base URLs for mirrors but received an array of length 0' })
  await t.rejects(datasets.mnist({ retries: 0 }), { code: 'ERR_INVALID_ARG', message: 'Expected an integer from 1 to 100 for retries but received number 0' })
  await t.rejects(datasets.mnist({ signal: {} }), { code: 'ERR_INVALID_ARG', message: 'Expected an AbortSignal for signal but received an object' })
  t.match(datasets.dataDir({ SIAMESE_TORCH_DATA: '/data/here' }), '/data/here')
  t.match(datasets.dataDir({ XDG_CACHE_HOME: '/xdg' }), process.platform === 'linux' ? '/xdg/siamese-torch/datasets' : /siamese-torch/)
})
