// Bad arguments, table-driven: every public function called with wrong types, NaN and infinite
// pixels, wrong sizes, empty and mismatched arrays, arrays with holes, a disposed model, and
// device 'cuda' on a CPU-only build. Each throws (synchronous functions) or rejects (the others)
// with a SiameseTorchError and its stable code; nothing crashes, nothing else is thrown, and the
// model predicts the same afterwards.
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createModel, datasets, loadModel, train, version, SiameseModel, SiameseTorchError } from 'siamese-torch'
import { image } from '../helpers/small-data.mjs'
import { scratchDir, tinyDigits } from './common.mjs'

const scratch = scratchDir(t, 'args')
const data = await tinyDigits()
const set = data.train
const img = image(data.test, 0)
const img2 = image(data.test, 1)
const model = await createModel({ seed: 1 })
const before = await model.predict(img, img2)
const modelFile = join(scratch, 'model.safetensors')
await model.save(modelFile)
const { model: trained } = await train({ data, epochs: 1, saveEvery: 1, outDir: join(scratch, 'run') })
trained.dispose()
const checkpoint = join(scratch, 'run', 'checkpoint-epoch-1.safetensors')
const disposed = await createModel({ seed: 2 })
disposed.dispose()
const emptyDir = join(scratch, 'empty')
mkdirSync(emptyDir)
const textFile = join(scratch, 'notes.txt')
writeFileSync(textFile, 'not an image\n')
const set32 = datasets.fromArrays({ images: new Uint8Array(4 * 32 * 32), labels: [0, 1, 0, 1], width: 32, height: 32 })
const oneClass = datasets.fromArrays({ images: new Uint8Array(4 * 784), labels: [0, 0, 0, 0], width: 28, height: 28 })
const onePerClass = datasets.fromArrays({ images: new Uint8Array(3 * 784), labels: [0, 1, 2], width: 28, height: 28 })
const nanPixels = new Float32Array(784).fill(0.5)
nanPixels[100] = NaN
const infPixels = new Float32Array(784).fill(0.5)
infPixels[5] = Infinity
// The data sets' cache folder: an empty one, so that 'mnist' is missing here.
const savedDataDir = process.env.SIAMESE_TORCH_DATA
process.env.SIAMESE_TORCH_DATA = emptyDir
t.teardown(() => {
  if (savedDataDir === undefined) delete process.env.SIAMESE_TORCH_DATA
  else process.env.SIAMESE_TORCH_DATA = savedDataDir
  model.dispose()
})

const INVALID = 'ERR_INVALID_ARG'
const BAD_FILE = 'ERR_BAD_FILE'
const DISPOSED = 'ERR_DISPOSED'
const CUDA = 'ERR_CUDA_UNAVAILABLE'
const hole = [img, , img2] // eslint-disable-line no-sparse-arrays

// [call, expected code]; `sync` tables hold functions that throw, the others return promises.
const tables = {
  createModel: [
    [() => createModel('28x28'), INVALID],
    [() => createModel(null), INVALID],
    [() => createModel({ width: 23 }), INVALID],
    [() => createModel({ width: 4097 }), INVALID],
    [() => createModel({ width: 28.5 }), INVALID],
    [() => createModel({ width: '28' }), INVALID],
    [() => createModel({ height: NaN }), INVALID],
    [() => createModel({ embeddingSize: 0 }), INVALID],
    [() => createModel({ embeddingSize: Infinity }), INVALID],
    [() => createModel({ loss: 'hinge' }), INVALID],
    [() => createModel({ margin: -1 }), INVALID],
    [() => createModel({ mean: NaN }), INVALID],
    [() => createModel({ std: 0 }), INVALID],
    [() => createModel({ device: 'gpu' }), INVALID],
    [() => createModel({ device: 'cuda:x' }), INVALID],
    [() => createModel({ seed: -1 }), INVALID],
    [() => createModel({ seed: 2 ** 53 }), INVALID],
    [() => createModel({ threads: 0 }), INVALID],
    [() => createModel({ threads: 1.5 }), INVALID],
    [() => createModel({ widht: 28 }), INVALID],
    [() => createModel({ device: 'cuda' }), CUDA],
    [() => createModel({ device: 'cuda:0' }), CUDA],
    [() => createModel({ device: 'cuda:7' }), CUDA]
  ],
  loadModel: [
    [() => loadModel(), INVALID],
    [() => loadModel(5), INVALID],
    [() => loadModel(''), INVALID],
    [() => loadModel(['a.safetensors']), INVALID],
    [() => loadModel(modelFile, 'cpu'), INVALID],
    [() => loadModel(modelFile, { device: 'tpu' }), INVALID],
    [() => loadModel(modelFile, { threads: -1 }), INVALID],
    [() => loadModel(modelFile, { cpu: true }), INVALID],
    [() => loadModel(join(scratch, 'missing.safetensors')), BAD_FILE],
    [() => loadModel(emptyDir), BAD_FILE],
    [() => loadModel(textFile), BAD_FILE],
    [() => loadModel(modelFile, { device: 'cuda' }), CUDA]
  ],
  train: [
    [() => train(null), INVALID],
    [() => train('embedded'), INVALID],
    [() => train({ data: 'cifar' }), INVALID],
    [() => train({ data: {} }), INVALID],
    [() => train({ data: { train: set } }), INVALID],
    [() => train({ data: { train: set, test: set32 } }), INVALID],
    [() => train({ data: { train: set, test: { ...set, count: set.count + 1 } } }), INVALID],
    [() => train({ data: { train: set, test: { ...set, labels: Array.from(set.labels) } } }), INVALID],
    [() => train({ data: { train: set, test: { ...set, classes: ['0'] } } }), INVALID],
    [() => train({ data, epochs: 0 }), INVALID],
    [() => train({ data, epochs: NaN }), INVALID],
    [() => train({ data, epochs: Infinity }), INVALID],
    [() => train({ data, epochs: '2' }), INVALID],
    [() => train({ data, batchSize: 0 }), INVALID],
    [() => train({ data, batchSize: 2 ** 21 }), INVALID],
    [() => train({ data, lr: NaN }), INVALID],
    [() => train({ data, lr: Infinity }), INVALID],
    [() => train({ data, weightDecay: -1 }), INVALID],
    [() => train({ data, momentum: 2 }), INVALID],
    [() => train({ data, optimizer: 'rmsprop' }), INVALID],
    [() => train({ data, pairs: 'random' }), INVALID],
    [() => train({ data, pairs: 'reference' }), INVALID],
    [() => train({ data, mining: 'batch-hard' }), INVALID],
    [() => train({ data, loss: 'triplet', mining: 'hardest' }), INVALID],
    [() => train({ data, margin: 2 }), INVALID],
    [() => train({ data, saveEvery: -1 }), INVALID],
    [() => train({ data, outDir: '' }), INVALID],
    [() => train({ data, outDir: 5 }), INVALID],
    [() => train({ data, onProgress: 'log' }), INVALID],
    [() => train({ data, signal: {} }), INVALID],
    [() => train({ data, threads: 0 }), INVALID],
    [() => train({ data, embeddingSize: -1 }), INVALID],
    [() => train({ data, download: true, epoch: 3 }), INVALID],
    [() => train({ data: { train: oneClass, test: oneClass }, epochs: 1 }), INVALID],
    [() => train({ data: { train: onePerClass, test: onePerClass }, epochs: 1 }), INVALID],
    [() => train({ data: { train: set32, test: datasets.fromArrays({ images: new Uint8Array(4 * 20 * 20), labels: [0, 1, 0, 1], width: 20, height: 20 }) } }), INVALID],
    [() => train({ data: { train: datasets.fromArrays({ images: new Uint8Array(4), labels: [0, 1, 0, 1], width: 1, height: 1 }), test: datasets.fromArrays({ images: new Uint8Array(4), labels: [0, 1, 0, 1], width: 1, height: 1 }) } }), INVALID],
    [() => train({ data: 'mnist' }), BAD_FILE],
    [() => train({ resume: 5 }), INVALID],
    [() => train({ resume: join(scratch, 'missing.safetensors'), data }), BAD_FILE],
    [() => train({ resume: modelFile, data }), BAD_FILE],
    [() => train({ resume: checkpoint, data, epochs: 1 }), INVALID],
    [() => train({ resume: checkpoint, data: { train: set32, test: set32 }, epochs: 2 }), INVALID],
    [() => train({ data, device: 'cuda' }), CUDA],
    [() => train({ resume: checkpoint, data, epochs: 2, device: 'cuda:0' }), CUDA]
  ],
  'model.predict': [
    [() => model.predict(), INVALID],
    [() => model.predict(img), INVALID],
    [() => model.predict(null, img), INVALID],
    [() => model.predict(5, img), INVALID],
    [() => model.predict({}, img), INVALID],
    [() => model.predict(img, [img2]), INVALID],
    [() => model.predict([img], img2), INVALID],
    [() => model.predict([], []), INVALID],
    [() => model.predict([img, img], [img2]), INVALID],
    [() => model.predict(hole, [img, img, img]), INVALID],
    [() => model.predict(new Uint8Array(783), img2), INVALID],
    [() => model.predict(new Uint8Array(0), img2), INVALID],
    [() => model.predict(new Int16Array(784), img2), INVALID],
    [() => model.predict(new Int32Array(784), img2), INVALID],
    [() => model.predict(new Float32Array(784).fill(2), img2), INVALID],
    [() => model.predict(new Float32Array(784).fill(-0.5), img2), INVALID],
    [() => model.predict(nanPixels, img2), INVALID],
    [() => model.predict(infPixels, img2), INVALID],
    [() => model.predict(new Float64Array(784).fill(NaN), img2), INVALID],
    [() => model.predict(img, [nanPixels][0]), INVALID],
    [() => model.predict(new DataView(new ArrayBuffer(784)), img2), INVALID],
    [() => model.predict(new ArrayBuffer(784), img2), INVALID],
    [() => model.predict(Buffer.from('not a PNG'), img2), INVALID],
    [() => model.predict(Buffer.alloc(0), img2), INVALID],
    [() => model.predict('', img2), INVALID],
    [() => model.predict(join(scratch, 'missing.png'), img2), BAD_FILE],
    [() => model.predict(textFile, img2), BAD_FILE],
    [() => model.predict(emptyDir, img2), BAD_FILE]
  ],
  'model.embed': [
    [() => model.embed(), INVALID],
    [() => model.embed([]), INVALID],
    [() => model.embed(42), INVALID],
    [() => model.embed([img, new Uint8Array(100)]), INVALID],
    [() => model.embed([img, , img]), INVALID], // eslint-disable-line no-sparse-arrays
    [() => model.embed(nanPixels), INVALID],
    [() => model.embed(infPixels), INVALID],
    [() => model.embed(textFile), BAD_FILE]
  ],
  'model.evaluate': [
    [() => model.evaluate('cifar'), INVALID],
    [() => model.evaluate(5), INVALID],
    [() => model.evaluate({}), INVALID],
    [() => model.evaluate([set]), INVALID],
    [() => model.evaluate(set32), INVALID],
    [() => model.evaluate({ train: set, test: set32 }), INVALID],
    [() => model.evaluate(set, 'fast'), INVALID],
    [() => model.evaluate(set, { ways: 1 }), INVALID],
    [() => model.evaluate(set, { ways: 11 }), INVALID],
    [() => model.evaluate(set, { ways: -1 }), INVALID],
    [() => model.evaluate(set, { episodes: 0 }), INVALID],
    [() => model.evaluate(set, { episodes: NaN }), INVALID],
    [() => model.evaluate(set, { testSeed: -1 }), INVALID],
    [() => model.evaluate(set, { seed: 0.5 }), INVALID],
    [() => model.evaluate(set, { way: 5 }), INVALID],
    [() => model.evaluate({ ...set, images: new Uint8Array(10) }), INVALID],
    [() => model.evaluate({ ...set, labels: new Int32Array(set.count).fill(99) }), INVALID],
    [() => model.evaluate(oneClass, { ways: 0 }), INVALID],
    [() => model.evaluate(onePerClass), INVALID],
    [() => model.evaluate('mnist'), BAD_FILE]
  ],
  'model.classify': [
    [() => model.classify(img), INVALID],
    [() => model.classify(img, null), INVALID],
    [() => model.classify(img, { images: [], labels: [] }), INVALID],
    [() => model.classify(img, { images: [img, img2], labels: ['a'] }), INVALID],
    [() => model.classify(img, { images: [img], labels: [{}] }), INVALID],
    [() => model.classify(img, { images: [img, img2], labels: ['a', ,] }), INVALID], // eslint-disable-line no-sparse-arrays
    [() => model.classify(img, { images: [img, , img2], labels: ['a', 'b', 'c'] }), INVALID], // eslint-disable-line no-sparse-arrays
    [() => model.classify(img, { images: [nanPixels], labels: ['a'] }), INVALID],
    [() => model.classify(img, set32), INVALID],
    [() => model.classify([], set), INVALID],
    [() => model.classify(new Uint8Array(5), set), INVALID],
    [() => model.classify(infPixels, set), INVALID],
    [() => model.classify(img, { images: [textFile], labels: ['a'] }), BAD_FILE]
  ],
  'model.save': [
    [() => model.save(), INVALID],
    [() => model.save(42), INVALID],
    [() => model.save(''), INVALID],
    [() => model.save({ path: 'x' }), INVALID],
    [() => model.save(join(scratch, 'no-such-dir', 'm.safetensors')), BAD_FILE],
    [() => model.save(emptyDir), BAD_FILE],
    [() => model.save('/proc/self/m.safetensors'), BAD_FILE]
  ],
  'model.train': [
    [() => model.train(null), INVALID],
    [() => model.train({ data, device: 'cpu' }), INVALID],
    [() => model.train({ data, loss: 'triplet' }), INVALID],
    [() => model.train({ data, resume: checkpoint }), INVALID],
    [() => model.train({ data: { train: set32, test: set32 } }), INVALID],
    [() => model.train({ data, epochs: -3 }), INVALID],
    [() => model.train({ data, batchSize: 1.5 }), INVALID],
    [() => model.train({ data: { train: oneClass, test: oneClass }, epochs: 1 }), INVALID]
  ],
  'a disposed model': [
    [() => disposed.predict(img, img2), DISPOSED],
    [() => disposed.predict([img], [img2]), DISPOSED],
    [() => disposed.embed(img), DISPOSED],
    [() => disposed.evaluate(set), DISPOSED],
    [() => disposed.classify(img, set), DISPOSED],
    [() => disposed.save(join(scratch, 'disposed.safetensors')), DISPOSED],
    [() => disposed.train({ data, epochs: 1 }), DISPOSED]
  ],
  'datasets (asynchronous)': [
    [() => datasets.idx(), INVALID],
    [() => datasets.idx(5), INVALID],
    [() => datasets.idx(emptyDir, { classes: [] }), INVALID],
    [() => datasets.idx(emptyDir, { classes: ['a', , 'c'] }), INVALID], // eslint-disable-line no-sparse-arrays
    [() => datasets.idx(emptyDir, { labels: 10 }), INVALID],
    [() => datasets.idx(emptyDir), BAD_FILE],
    [() => datasets.idx(join(scratch, 'missing')), BAD_FILE],
    [() => datasets.idx(textFile), BAD_FILE],
    [() => datasets.imageFolder(), INVALID],
    [() => datasets.imageFolder(emptyDir, { width: 0 }), INVALID],
    [() => datasets.imageFolder(emptyDir, { height: 5000 }), INVALID],
    [() => datasets.imageFolder(emptyDir, { testFraction: 1 }), INVALID],
    [() => datasets.imageFolder(emptyDir, { testFraction: NaN }), INVALID],
    [() => datasets.imageFolder(emptyDir), BAD_FILE],
    [() => datasets.imageFolder(textFile), BAD_FILE],
    [() => datasets.mnist('root'), INVALID],
    [() => datasets.mnist({ root: 5 }), INVALID],
    [() => datasets.mnist({ download: 'yes' }), INVALID],
    [() => datasets.mnist({ mirrors: [] }), INVALID],
    [() => datasets.mnist({ mirrors: ['http://a/', ,] }), INVALID], // eslint-disable-line no-sparse-arrays
    [() => datasets.mnist({ retries: 0 }), INVALID],
    [() => datasets.mnist({ timeoutMs: -1 }), INVALID],
    [() => datasets.mnist({ onProgress: true }), INVALID],
    [() => datasets.mnist({ signal: 'stop' }), INVALID],
    [() => datasets.mnist({ root: emptyDir }), BAD_FILE],
    [() => datasets.fashionMnist({ root: emptyDir }), BAD_FILE],
    [() => datasets.fashionMnist({ root: emptyDir, retries: 1.5 }), INVALID]
  ]
}

const syncTables = {
  'datasets.fromArrays': [
    [() => datasets.fromArrays(), INVALID],
    [() => datasets.fromArrays(null), INVALID],
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: [0], width: 28 }), INVALID],
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: [0], width: 0, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: [0], width: 28.5, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: [], width: 28, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: [0, 1], width: 28, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: new Uint8Array(783), labels: [0], width: 28, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: new Int8Array(784), labels: [0], width: 28, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: 'pixels', labels: [0], width: 28, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: [new Uint8Array(784), new Uint8Array(10)], labels: [0, 1], width: 28, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: [new Uint8Array(784), ,], labels: [0, 1], width: 28, height: 28 }), INVALID], // eslint-disable-line no-sparse-arrays
    [() => datasets.fromArrays({ images: nanPixels, labels: [0], width: 28, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: infPixels, labels: [0], width: 28, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: [nanPixels], labels: [0], width: 28, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: new Float32Array(784).fill(1.01), labels: [0], width: 28, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: [-1], width: 28, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: [0.5], width: 28, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: [NaN], width: 28, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: ['0'], width: 28, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: [2 ** 31], width: 28, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: [,], width: 28, height: 28 }), INVALID], // eslint-disable-line no-sparse-arrays
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: { length: 1, 0: 0 }, width: 28, height: 28 }), INVALID],
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: [3], width: 28, height: 28, classes: ['a', 'b'] }), INVALID],
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: [0], width: 28, height: 28, classes: [] }), INVALID],
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: [0], width: 28, height: 28, classes: [1] }), INVALID],
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: [0], width: 28, height: 28, classes: ['a', , 'c'] }), INVALID], // eslint-disable-line no-sparse-arrays
    [() => datasets.fromArrays({ images: new Uint8Array(784), labels: [0], width: 28, height: 28, colour: true }), INVALID]
  ],
  'datasets samplers': [
    [() => datasets.triplets(), INVALID],
    [() => datasets.triplets({}), INVALID],
    [() => datasets.triplets({ ...set, count: -1 }), INVALID],
    [() => datasets.triplets(set, { scheme: 'random' }), INVALID],
    [() => datasets.triplets(set, { scheme: 'reference' }), INVALID],
    [() => datasets.triplets(set, { seed: -1 }), INVALID],
    [() => datasets.triplets(set, { epoch: 0.5 }), INVALID],
    [() => datasets.triplets(oneClass), INVALID],
    [() => datasets.triplets(onePerClass), INVALID],
    [() => datasets.pairs(null), INVALID],
    [() => datasets.pairs(set, { seed: NaN }), INVALID],
    [() => datasets.pairs(oneClass), INVALID],
    [() => datasets.testPairs(set, { seed: 'x' }), INVALID],
    [() => datasets.testPairs(set, { epoch: 1 }), INVALID],
    [() => datasets.testPairs(onePerClass), INVALID],
    [() => datasets.classBalancedBatches(set), INVALID],
    [() => datasets.classBalancedBatches(set, {}), INVALID],
    [() => datasets.classBalancedBatches(set, { classesPerBatch: 1, imagesPerClass: 2 }), INVALID],
    [() => datasets.classBalancedBatches(set, { classesPerBatch: 11, imagesPerClass: 2 }), INVALID],
    [() => datasets.classBalancedBatches(set, { classesPerBatch: 2, imagesPerClass: 0 }), INVALID],
    [() => datasets.classBalancedBatches(onePerClass, { classesPerBatch: 2, imagesPerClass: 2 }), INVALID],
    [() => datasets.classCounts(), INVALID],
    [() => datasets.classCounts({}), INVALID],
    [() => datasets.dataDir(null), INVALID],
    [() => datasets.dataDir('HOME'), INVALID]
  ],
  'model getters and dispose': [
    [() => disposed.config, DISPOSED],
    [() => disposed.device, DISPOSED],
    [() => disposed.threads, DISPOSED],
    [() => disposed.classes, DISPOSED],
    [() => disposed.metadata, DISPOSED],
    [() => new SiameseModel({}), INVALID],
    [() => new SiameseModel(), INVALID]
  ]
}

const cudaHere = version().cuda
let total = 0

async function check (t, call, code, sync) {
  if (code === CUDA && cudaHere) return
  total++
  let thrown = null
  let returned
  try {
    returned = call()
  } catch (err) {
    thrown = err
  }
  let err = thrown
  if (sync) {
    t.ok(thrown, `${call}: throws synchronously`)
  } else {
    t.notOk(thrown, `${call}: returns a promise rather than throwing${thrown ? ` (threw ${thrown.code} ${thrown.message})` : ''}`)
    if (!thrown) err = await Promise.resolve(returned).then(() => null, (e) => e)
  }
  const ok = err instanceof SiameseTorchError && err.code === code
  t.ok(ok, `${String(call).replace(/^\(\) => /, '')}: ${code}` + (ok ? '' : ` expected, got ${err === null ? 'success' : `${err?.constructor?.name} ${err?.code}: ${err?.message}`}`))
}

for (const [name, rows] of Object.entries(tables)) {
  t.test(name, async (t) => {
    for (const [call, code] of rows) await check(t, call, code, false)
  })
}
for (const [name, rows] of Object.entries(syncTables)) {
  t.test(name, async (t) => {
    for (const [call, code] of rows) await check(t, call, code, true)
  })
}

t.test('after all that, the model predicts as before and can still be used fully', async (t) => {
  t.comment(`${total} bad calls tried${cudaHere ? ' (CUDA cases skipped: this machine has CUDA)' : ''}`)
  t.equal(await model.predict(img, img2), before, 'the same probability as before the bad calls')
  t.same((await model.embed(img))[0].length, 512)
  const { history } = await model.train({ data, epochs: 1 })
  t.equal(history.length, 1, 'and it still trains')
  disposed.dispose() // a second dispose is fine
})
