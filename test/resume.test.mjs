// Resuming, aborting and the data a model knows: a resume continues the same run on the same data
// or is refused with what to pass; what train() built is freed whenever it rejects; an abort keeps
// its reason; the output folder is checked before the first batch; a model knows its data.
import t from 'tap'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import v8 from 'node:v8'
import { runInNewContext } from 'node:vm'
import { join } from 'node:path'
import { createModel, datasets, loadModel, train, SiameseTorchError } from 'siamese-torch'
import { binding } from '../dist/binding.js'
import { nativeAugment } from '../dist/options.js'
import { smallDigits, strided } from './helpers/small-data.mjs'
import { scratchDir } from './reliability/common.mjs'

const scratch = scratchDir(t, 'resume')
const data = await smallDigits()

function weightBytes (file) {
  const buffer = readFileSync(file)
  return buffer.subarray(8 + Number(buffer.readBigUInt64LE(0)))
}

// One run of two epochs with a checkpoint after each, shared by the tests below.
const run = join(scratch, 'run')
const { model: first } = await train({ data, epochs: 2, saveEvery: 1, seed: 3, threads: 1, outDir: run })
first.dispose()
const checkpoint = join(run, 'checkpoint-epoch-1.safetensors')

t.test('a checkpoint of sets built in memory: a resume without data says what to pass', async (t) => {
  const err = await train({ resume: checkpoint }).then(() => null, (e) => e)
  t.type(err, SiameseTorchError)
  t.equal(err.code, 'ERR_INVALID_ARG')
  t.equal(err.message, `Expected the data ${checkpoint} was trained on (small digits, which is not a named set or a folder ` +
    'that can be read again): pass the same sets as data to resume for data but received undefined')
})

t.test('a resume on other data is refused before the first batch', async (t) => {
  const other = { train: strided(data.train, 2), test: data.test }
  const events = []
  await t.rejects(train({ resume: checkpoint, data: other, onProgress: (e) => events.push(e) }), {
    code: 'ERR_INVALID_ARG',
    message: 'the data is not the data the checkpoint was trained on (its images, labels or classes differ): resume with the same data, or start a new run'
  })
  t.same(events, [], 'no batch was trained')
  const { model, history } = await train({ resume: checkpoint, data, outDir: join(scratch, 'again') })
  t.same(history.map((h) => h.epoch), [2], 'the same data resumes')
  t.ok(weightBytes(join(run, 'model.safetensors')).equals(weightBytes(join(scratch, 'again', 'model.safetensors'))), 'bit-identical')
  model.dispose()
})

t.test('data read from a folder is read again: a resume, and evaluate(), need no data', async (t) => {
  const folder = join(scratch, 'idx')
  mkdirSync(folder)
  const write = (name, magic, dims, bytes) => {
    const header = Buffer.alloc(4 + 4 * dims.length)
    header.writeUInt32BE(magic, 0)
    dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i))
    writeFileSync(join(folder, name), Buffer.concat([header, Buffer.from(bytes)]))
  }
  for (const [prefix, set] of [['train', data.train], ['t10k', data.test]]) {
    write(`${prefix}-images-idx3-ubyte`, 2051, [set.count, 28, 28], set.images)
    write(`${prefix}-labels-idx1-ubyte`, 2049, [set.count], Uint8Array.from(set.labels))
  }
  const folderRun = join(scratch, 'folder-run')
  const { model } = await train({ data: await datasets.idx(folder), epochs: 2, saveEvery: 1, seed: 4, threads: 1, outDir: folderRun })
  t.equal(JSON.parse(model.metadata.train_options).data, folder, 'the checkpoint records where its data came from')
  t.equal(model.metadata.data_fingerprint.length, 16, 'and the fingerprint of its data')
  t.equal((await model.evaluate(undefined, { ways: 0 })).pairs, 2 * data.test.count, 'evaluate() with no data uses the data the model was trained on')
  model.dispose()
  const { model: resumed, history } = await train({ resume: join(folderRun, 'checkpoint-epoch-1.safetensors'), outDir: join(scratch, 'folder-resumed') })
  t.same(history.map((h) => h.epoch), [2], 'the resume found its data by itself')
  t.ok(weightBytes(join(folderRun, 'model.safetensors')).equals(weightBytes(join(scratch, 'folder-resumed', 'model.safetensors'))), 'bit-identical')
  resumed.dispose()
})

t.test('what train() builds is freed whenever it rejects, resumed or not', async (t) => {
  // Nothing left for a garbage collection to free: a model left undisposed would stay live.
  v8.setFlagsFromString('--expose-gc')
  runInNewContext('gc')()
  const before = binding().cpuMemory().liveBytes
  // Rejected after the checkpoint is loaded: its data are of another size.
  const big = datasets.fromArrays({ images: new Uint8Array(4 * 32 * 32), labels: [0, 1, 0, 1], width: 32, height: 32 })
  await t.rejects(train({ resume: checkpoint, data: { train: big, test: big } }), { code: 'ERR_INVALID_ARG' })
  t.equal(binding().cpuMemory().liveBytes, before, 'the resumed model was freed (its weights are no longer live)')
  await t.rejects(train({ resume: join(run, 'model.safetensors') }), { code: 'ERR_BAD_FILE', message: /not a checkpoint/ })
  t.equal(binding().cpuMemory().liveBytes, before, 'the model of a file that is not a checkpoint too')
  await t.rejects(train({ data, outDir: '/proc/siamese-torch' }), { code: 'ERR_BAD_FILE' })
  t.equal(binding().cpuMemory().liveBytes, before, 'and a new model')
})

t.test('an abort keeps its reason as the cause, and says what became of the model', async (t) => {
  const reason = new Error('user pressed stop')
  const stop = (controller) => (e) => { if (e.type === 'batch') controller.abort(reason) }
  const a = new AbortController()
  const err = await train({ data, epochs: 3, signal: a.signal, onProgress: stop(a) }).then(() => null, (e) => e)
  t.equal(err.code, 'ABORT_ERR')
  t.equal(err.cause, reason, 'the reason given to abort() is the cause')
  t.equal(err.message, 'training was aborted; the model train() built is freed (to keep one after an abort, use createModel() and model.train())')
  const model = await createModel({ seed: 1 })
  const b = new AbortController()
  const kept = await model.train({ data, epochs: 3, signal: b.signal, onProgress: stop(b) }).then(() => null, (e) => e)
  t.equal(kept.cause, reason)
  t.equal(kept.message, 'training was aborted; the model keeps the weights of its last completed step')
  t.ok((await model.predict(data.test.images.subarray(0, 784), data.test.images.subarray(784, 1568))) >= 0, 'and it does')
  model.dispose()
})

t.test('the output folder is checked before the first batch, with its path', async (t) => {
  const file = join(scratch, 'a-file')
  writeFileSync(file, 'not a folder')
  const cases = [
    [file, `outDir: ${file} is not a folder (a file is in the way)`],
    [join(file, 'below'), `outDir: ${join(file, 'below')} cannot be made: a file is in the way`],
    ['/proc/siamese-torch', /^outDir: \/proc\/siamese-torch cannot be made \(/],
    ['/proc/self', /^outDir: \/proc\/self cannot be written to \(/]
  ]
  for (const [outDir, message] of cases) {
    const events = []
    const err = await train({ data, epochs: 1, outDir, onProgress: (e) => events.push(e) }).then(() => null, (e) => e)
    t.equal(err?.code, 'ERR_BAD_FILE', outDir)
    t.match(err?.message, message)
    t.ok(err?.path.startsWith(outDir), `names the folder (${err?.path})`)
    t.same(events, [], 'before any batch')
  }
  const made = join(scratch, 'made', 'on', 'demand')
  const { model } = await train({ data, epochs: 1, outDir: made, saveEvery: 0 })
  model.dispose()
  t.same(readFileSync(join(made, 'model.safetensors')).subarray(8, 9).toString(), '{', 'a missing folder is made')
  rmSync(made, { recursive: true })
})

t.test('evaluate() without data: a model trained on other classes needs its data', async (t) => {
  const letters = { name: 'letters', train: { ...data.train, classes: data.train.classes.map((c) => `letter ${c}`) }, test: { ...data.test, classes: data.test.classes.map((c) => `letter ${c}`) } }
  const { model } = await train({ data: letters, epochs: 1 })
  await t.rejects(model.evaluate(), {
    code: 'ERR_INVALID_ARG',
    message: 'Expected the data to evaluate on: this model was trained on letters (classes letter 0, letter 1, letter 2, letter 3, letter 4, ...), not on the digits for data but received undefined'
  })
  const m = await model.evaluate(letters, { ways: 0 })
  t.ok(m.accuracy > 0 && m.bestAccuracy >= m.accuracy, `given its data, it evaluates (best accuracy ${m.bestAccuracy})`)
  const file = join(scratch, 'letters.safetensors')
  await model.save(file)
  model.dispose()
  const loaded = await loadModel(file)
  await t.rejects(loaded.evaluate(), { code: 'ERR_INVALID_ARG', message: /trained on letters/ }, 'a loaded model knows it too')
  loaded.dispose()
  const fresh = await createModel()
  t.equal((await fresh.evaluate(undefined, { ways: 0, episodes: 1 })).pairs, 3992, 'a model never trained evaluates on the digits')
  fresh.dispose()
})

t.test('the resume state is read once, by loadModel, off the main thread', async (t) => {
  // The addon keeps the optimiser state that loadModel read; training does not open the file again.
  const copy = join(tmpdir(), `siamese-resume-${process.pid}.safetensors`)
  writeFileSync(copy, readFileSync(checkpoint))
  const { model: native, checkpoint: isCheckpoint } = await binding().loadModel(copy, 'cpu', 1, true)
  t.ok(isCheckpoint)
  rmSync(copy)
  const { model: reference } = await train({ resume: checkpoint, data })
  const history = await new Promise((resolve, reject) => {
    const settings = JSON.parse(native.info().metadata.train_options)
    native.train({ ...data.train, numClasses: 10 }, { ...data.test, numClasses: 10 }, {
      ...settings,
      outDir: '',
      testSeed: 0,
      startEpoch: 1,
      resume: true,
      expectedDataFingerprint: native.info().metadata.data_fingerprint,
      freezeStages: 0,
      augment: nativeAugment(false)
    }, () => {}).then(resolve, reject)
  })
  t.same(history.history.map((h) => h.epoch), [2], 'the deleted file was not needed')
  const left = data.test.images.subarray(0, 784 * 4)
  const right = data.test.images.subarray(784 * 4, 784 * 8)
  t.same([...await native.predictPairs(left, right, 4)], await reference.predict([0, 1, 2, 3].map((i) => left.subarray(i * 784, (i + 1) * 784)),
    [0, 1, 2, 3].map((i) => right.subarray(i * 784, (i + 1) * 784))), 'and the run is the same as a resume from the file')
  native.dispose()
  reference.dispose()
})
