// Training: events, files, determinism, resume, abort, busy rules, the event loop, bad options.
import t from 'tap'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defaults, train, createModel, loadModel, version, SiameseTorchError } from 'siamese-torch'
import { smallDigits, image } from './helpers/small-data.mjs'

const data = await smallDigits()
const scratch = mkdtempSync(join(tmpdir(), 'siamese-train-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

// The weights region of a safetensors file (everything after the header).
function weightBytes (file) {
  const buffer = readFileSync(file)
  const headerLength = Number(buffer.readBigUInt64LE(0))
  return buffer.subarray(8 + headerLength)
}

t.test('one epoch: events, metrics, files, and a free event loop', async (t) => {
  const outDir = join(scratch, 'run')
  const events = []
  let maxGap = 0
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    maxGap = Math.max(maxGap, now - last)
    last = now
  }, 10)
  const { model, history } = await train({ data, epochs: 2, saveEvery: 1, outDir, seed: 1, onProgress: (e) => events.push(e) })
  clearInterval(timer)
  t.ok(maxGap < 100, `the event loop never waited more than 100 ms (largest gap ${maxGap.toFixed(1)} ms)`)

  t.equal(history.length, 2)
  const m = history[1]
  t.same(Object.keys(m).sort(), ['auc', 'epoch', 'pairsPerSecond', 'seconds', 'testAccuracy', 'testClasses', 'testLoss', 'threshold', 'trainAccuracy', 'trainLoss', 'unseenClasses'])
  t.same([m.testClasses, m.unseenClasses], [10, 0], 'every test class trained')
  t.ok(m.trainAccuracy > 0.5 && m.trainAccuracy <= 1, `train accuracy ${m.trainAccuracy}`)
  t.ok(m.testAccuracy > 0.5 && m.testAccuracy <= 1, `accuracy ${m.testAccuracy}`)
  t.ok(m.auc > 0.5 && m.auc <= 1, `auc ${m.auc}`)
  t.ok(m.pairsPerSecond > 0 && m.seconds > 0)
  t.ok(history[1].trainLoss < history[0].trainLoss, 'the loss goes down')

  const batches = events.filter((e) => e.type === 'batch')
  t.ok(batches.length >= 2, 'batch events arrive')
  const lastOfEpoch = batches.filter((e) => e.epoch === 1).at(-1)
  t.equal(lastOfEpoch.batch, lastOfEpoch.batches, 'the last batch of an epoch is always reported')
  t.equal(lastOfEpoch.batches, Math.ceil(data.train.count / defaults.training.batchSize), `batches of ${defaults.training.batchSize} triplets`)
  t.same(events.filter((e) => e.type === 'epoch').map((e) => e.epoch), [1, 2])
  const files = events.filter((e) => e.type === 'file')
  t.same(files.map((f) => f.kind), ['checkpoint', 'checkpoint', 'model'])
  t.same(readdirSync(outDir).sort(), ['checkpoint-epoch-1.safetensors', 'checkpoint-epoch-2.safetensors', 'model.safetensors'])

  t.same(model.classes, data.train.classes)
  t.equal(model.device, 'cpu')
  t.equal(model.config.loss, 'pair-ce')
  const p = await model.predict(image(data.test, 0), image(data.test, 1))
  t.ok(p >= 0 && p <= 1)
  model.dispose()
})

t.test('the same seed on the CPU gives bit-identical weights', async (t) => {
  const run = async (dir) => {
    const { model } = await train({ data, epochs: 1, seed: 7, threads: 1, outDir: join(scratch, dir) })
    t.equal(model.threads, 1, 'the model keeps its thread count for inference')
    model.dispose()
    return weightBytes(join(scratch, dir, 'model.safetensors'))
  }
  const a = await run('det-a')
  const b = await run('det-b')
  t.ok(a.equals(b), 'identical weights')
  const { model } = await train({ data, epochs: 1, seed: 8, threads: 1, outDir: join(scratch, 'det-c') })
  model.dispose()
  t.notOk(a.equals(weightBytes(join(scratch, 'det-c', 'model.safetensors'))), 'another seed, other weights')
})

t.test('resume from a checkpoint ends with the same weights as an uninterrupted run', async (t) => {
  const full = join(scratch, 'full')
  const { model: a } = await train({ data, epochs: 2, saveEvery: 1, seed: 3, threads: 1, outDir: full })
  a.dispose()
  const resumed = join(scratch, 'resumed')
  const { model: b, history } = await train({ resume: join(full, 'checkpoint-epoch-1.safetensors'), data, epochs: 2, outDir: resumed })
  t.same(history.map((h) => h.epoch), [2], 'only the missing epoch runs')
  t.ok(weightBytes(join(full, 'model.safetensors')).equals(weightBytes(join(resumed, 'model.safetensors'))), 'identical weights')
  b.dispose()
  await t.rejects(train({ resume: join(full, 'model.safetensors'), data }), { code: 'ERR_BAD_FILE', message: /not a checkpoint/ })
  await t.rejects(train({ resume: join(full, 'checkpoint-epoch-2.safetensors'), data, epochs: 2 }), {
    code: 'ERR_INVALID_ARG', message: 'Expected more than the 2 epochs the checkpoint has done for epochs but received number 2'
  })
})

t.test('abort: rejects with ABORT_ERR between batches, the model stays usable, no partial file', async (t) => {
  const model = await createModel({ seed: 2 })
  const outDir = join(scratch, 'aborted')
  const controller = new AbortController()
  const run = model.train({ data, epochs: 5, saveEvery: 1, outDir, signal: controller.signal, onProgress: (e) => { if (e.type === 'batch' && e.batch >= 2) controller.abort() } })
  const err = await run.then(() => null, (e) => e)
  t.type(err, SiameseTorchError)
  t.equal(err.code, 'ABORT_ERR')
  const p = await model.predict(image(data.test, 0), image(data.test, 0))
  t.ok(p >= 0 && p <= 1, 'predict works after the abort')
  t.same(readdirSync(outDir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left')
  const again = await model.train({ data, epochs: 1 })
  t.equal(again.history.length, 1, 'the model trains again after an abort')
  const pre = new AbortController()
  pre.abort()
  await t.rejects(model.train({ data, signal: pre.signal }), { code: 'ABORT_ERR' })
  model.dispose()
})

t.test('one job at a time: ERR_BUSY for a second train and for dispose; predict works meanwhile', async (t) => {
  const model = await createModel({ seed: 4 })
  let sawBatch
  const batch = new Promise((resolve) => { sawBatch = resolve })
  const run = model.train({ data, epochs: 1, onProgress: (e) => { if (e.type === 'batch') sawBatch() } })
  await batch
  await t.rejects(model.train({ data, epochs: 1 }), { code: 'ERR_BUSY', message: 'this model is already training' })
  t.throws(() => model.dispose(), { code: 'ERR_BUSY' })
  const p = await model.predict(image(data.test, 3), image(data.test, 4))
  t.ok(p >= 0 && p <= 1, `predict during training answers from the last completed step (${p})`)
  await run
  model.dispose()
  await t.rejects(model.predict(image(data.test, 0), image(data.test, 1)), { code: 'ERR_DISPOSED' })
  t.throws(() => model.config, { code: 'ERR_DISPOSED' })
  model.dispose() // twice is fine
})

t.test('an exception in onProgress does not stop training', async (t) => {
  const warnings = []
  const onWarning = (w) => warnings.push(w.message)
  process.on('warning', onWarning)
  const { model, history } = await train({ data, epochs: 1, onProgress: () => { throw new Error('boom') } })
  await new Promise((resolve) => setImmediate(resolve))
  process.off('warning', onWarning)
  t.equal(history.length, 1)
  t.match(warnings.join('\n'), 'siamese-torch: onProgress threw (training goes on): boom')
  model.dispose()
})

t.test('contrastive and triplet losses, with mining', async (t) => {
  for (const options of [{ loss: 'contrastive', margin: 2 }, { loss: 'triplet' }, { loss: 'triplet', mining: 'batch-hard' }, { loss: 'triplet', mining: 'semi-hard', margin: 0.5 }]) {
    const { model, history } = await train({ data, epochs: 1, ...options })
    const m = history[0]
    t.ok(Number.isFinite(m.trainLoss) && Number.isFinite(m.testLoss), `${JSON.stringify(options)}: finite losses`)
    t.ok(m.testAccuracy > 0.5, `${JSON.stringify(options)}: accuracy ${m.testAccuracy}`)
    t.equal(model.config.loss, options.loss)
    t.equal(model.config.threshold, m.threshold, 'the decision threshold is the best one found')
    const same = await model.predict(image(data.test, 0), image(data.test, 0))
    t.ok(same > 0.5, `an image with itself is "same" (${same})`)
    model.dispose()
  }
})

t.test('bad options are refused before any work', async (t) => {
  const cases = [
    [{ epochs: 0 }, 'Expected an integer from 1 to 1000000 for epochs but received number 0'],
    [{ lr: -1 }, 'Expected a number from 1e-12 to 100 for lr but received number -1'],
    [{ pairs: 'random' }, "Expected one of 'reference', 'balanced' for pairs but received string \"random\""],
    [{ loss: 'hinge' }, "Expected one of 'pair-ce', 'contrastive', 'triplet' for loss but received string \"hinge\""],
    [{ mining: 'batch-hard' }, "Expected 'none' unless loss is 'triplet' for mining but received string \"batch-hard\""],
    [{ margin: 2 }, "Expected no margin with loss 'pair-ce' (margins go with 'contrastive' and 'triplet') for margin but received number 2"],
    [{ device: 'gpu' }, "Expected 'auto', 'cpu', 'cuda' or 'cuda:N' for device but received string \"gpu\""],
    [{ data: 'cifar' }, "Expected 'embedded', 'mnist', 'fashion-mnist', 'omniglot', an existing folder or { train, test } for data but received string \"cifar\""],
    [{ epoch: 3 }, /unknown option "epoch"/],
    [{ onProgress: 'yes' }, 'Expected a function for onProgress but received string "yes"'],
    [{ cudaGraph: 'yes' }, 'Expected a boolean for cudaGraph but received string "yes"']
  ]
  for (const [options, message] of cases) {
    await t.rejects(train({ data, ...options }), { code: 'ERR_INVALID_ARG', message }, JSON.stringify(options))
  }
})

t.test('cudaGraph on the CPU: ERR_UNSUPPORTED before any work, the model stays usable', async (t) => {
  const model = await createModel()
  let batches = 0
  await t.rejects(model.train({ data, epochs: 1, cudaGraph: true, onProgress: () => { batches++ } }), {
    code: 'ERR_UNSUPPORTED', message: /cudaGraph captures the training step on a GPU/
  })
  t.equal(batches, 0, 'no batch ran')
  const { history } = await train({ data, epochs: 1, cudaGraph: false, threads: 1, seed: 1 })
  t.ok(history[0].testAccuracy > 0.5, 'cudaGraph: false trains as usual')
  t.ok((await model.predict(image(data.test, 0), image(data.test, 0))) > 0, 'the refused model still predicts')
  model.dispose()
})

t.test("device 'cuda' without CUDA: ERR_CUDA_UNAVAILABLE", { skip: version().cuda && 'this machine has CUDA' }, async (t) => {
  await t.rejects(createModel({ device: 'cuda' }), { code: 'ERR_CUDA_UNAVAILABLE', message: /"cuda" asked for, but/ })
  await t.rejects(createModel({ device: 'cuda:1' }), { code: 'ERR_CUDA_UNAVAILABLE' })
  const model = await createModel({ device: 'auto' })
  t.equal(model.device, 'cpu', "'auto' falls back to the CPU")
  t.equal(model.threads, version().threads, 'threads: the default (the CPUs this process may use) unless given')
  model.dispose()
  await t.rejects(createModel({ threads: 0 }), { code: 'ERR_INVALID_ARG', message: 'Expected an integer from 1 to 1024 for threads but received number 0' })
  await t.rejects(createModel({ margin: 2 }), { code: 'ERR_INVALID_ARG', message: /no margin with loss 'pair-ce'/ }, 'createModel, like train, refuses a margin pair-ce has no use for')
})

t.test('a saved model loads and predicts the same', async (t) => {
  const { model } = await train({ data, epochs: 1, seed: 5 })
  const file = join(scratch, 'saved.safetensors')
  await model.save(file)
  const loaded = await loadModel(file)
  const pairs = [[0, 1], [2, 30], [5, 5]]
  const a = pairs.map(([i]) => image(data.test, i))
  const b = pairs.map(([, j]) => image(data.test, j))
  t.same(await loaded.predict(a, b), await model.predict(a, b))
  t.same(loaded.config, model.config)
  t.same(loaded.classes, data.train.classes)
  t.match(loaded.metadata['train_options'], /"seed":5/)
  model.dispose()
  loaded.dispose()
})

t.test('training pixels are copied on the main thread after train() returns: a buffer detached meanwhile is refused, not read', async (t) => {
  const { binding } = await import('../dist/binding.js')
  const { nativeAugment } = await import('../dist/options.js')
  const native = await binding().createModel({ tower: 'reference', width: 28, height: 28, channels: 1, embeddingSize: 16, mean: [0.1307], std: [0.3081], loss: 'pair-ce', margin: 1, threshold: 0.5 }, 'cpu', 0, 1)
  const images = new Uint8Array(data.train.images)
  const config = { epochs: 1, batchSize: 64, seed: 0, pairs: 'balanced', mining: 'none', optimizer: 'adam', lr: 0.001, lrSchedule: 'constant', warmup: 0, weightDecay: 0, momentum: 0, saveEvery: 0, outDir: '', threads: 1, testSeed: 0, startEpoch: 0, resume: false, expectedDataFingerprint: '', freezeStages: 0, augment: nativeAugment(false) }
  const running = native.train({ ...data.train, images, numClasses: 10 }, { ...data.test, numClasses: 10 }, config, () => {})
  structuredClone(images, { transfer: [images.buffer] }) // detached before the training thread asked for it
  t.equal(images.length, 0, 'detached')
  await t.rejects(running, { code: 'ERR_INVALID_ARG', message: 'the training images were detached or resized after train() was called' })
  const again = await native.train({ ...data.train, numClasses: 10 }, { ...data.test, numClasses: 10 }, config, () => {})
  t.equal(again.history.length, 1, 'the model trains afterwards')
  native.dispose()
})
