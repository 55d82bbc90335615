// Concurrency: many calls at once on one model agree with the same calls one by one; reads
// during training work; dispose() during any job is refused with ERR_BUSY and leaves the model
// usable; two models train at once and each ends as it would alone; concurrent saves to one
// path leave one complete file; worker threads predict from one file while the main thread
// trains. (test/worker-threads.test.mjs covers workers that train, and terminate.)
import t from 'tap'
import { Worker } from 'node:worker_threads'
import { mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { createModel, loadModel, train, datasets } from 'siamese-torch'
import { image } from '../helpers/small-data.mjs'
import { scratchDir, tinyDigits } from './common.mjs'

const scratch = scratchDir(t, 'concurrency')
const data = await tinyDigits()
const { test } = data
const { model } = await train({ data, epochs: 2, seed: 11, threads: 1 })
const n = test.count
// 200 distinct pairs of test images.
const pairs = Array.from({ length: 200 }, (_, k) => [k % n, (k * 7 + 3) % n])
const left = pairs.map(([i]) => image(test, i))
const right = pairs.map(([, j]) => image(test, j))

const sequential = []
for (let k = 0; k < pairs.length; k++) sequential.push(await model.predict(left[k], right[k]))

t.test('200 concurrent predict calls agree with the same calls made one by one', async (t) => {
  t.ok(new Set(sequential.map((p) => p.toFixed(4))).size > 20, 'the pairs get different probabilities (the check has teeth)')
  const concurrent = await Promise.all(pairs.map((_, k) => model.predict(left[k], right[k])))
  t.same(concurrent, sequential, 'bit-identical, each to its own pair')
  // The same, with embed, classify, evaluate and batch predicts interleaved.
  const support = { images: [image(test, 0), image(test, 1), image(test, 2)], labels: ['a', 'b', 'c'] }
  const [mixed, batch, embedded, classified, evaluated] = await Promise.all([
    Promise.all(pairs.map((_, k) => model.predict(left[k], right[k]))),
    Promise.all([model.predict(left.slice(0, 50), right.slice(0, 50)), model.predict(left.slice(0, 50), right.slice(0, 50))]),
    Promise.all(left.slice(0, 20).map((a) => model.embed(a))),
    Promise.all(left.slice(0, 20).map((a) => model.classify(a, support))),
    Promise.all([model.evaluate(data, { ways: 5, episodes: 50 }), model.evaluate(data, { ways: 5, episodes: 50 })])
  ])
  t.same(mixed, sequential, 'interleaved with other jobs: still bit-identical')
  t.same(batch[0], batch[1], 'two identical batch calls at once agree')
  t.same(embedded.map(([e]) => Array.from(e)), (await Promise.all(left.slice(0, 20).map((a) => model.embed(a)))).map(([e]) => Array.from(e)), 'embeddings agree')
  t.same(classified.map(([c]) => c.className), (await Promise.all(left.slice(0, 20).map((a) => model.classify(a, support)))).map(([c]) => c.className))
  t.same(evaluated[0], evaluated[1], 'two evaluations at once agree')
})

t.test('reads during training: predict, embed, evaluate and save all work', async (t) => {
  const m = await createModel({ seed: 12 })
  const state = { training: true }
  const run = m.train({ data, epochs: 3, threads: 1 }).finally(() => { state.training = false })
  const answers = []
  let saved = 0
  while (state.training) {
    const [p, [e], metrics] = await Promise.all([
      m.predict(left[0], right[0]), m.embed(left[1]), m.evaluate(data, { ways: 0 }),
      m.save(join(scratch, 'during.safetensors')).then(() => saved++)
    ])
    answers.push(p)
    t.ok(p >= 0 && p <= 1 && e.length === 512 && metrics.pairs > 0, `answer ${answers.length}: P = ${p.toFixed(4)}`)
  }
  const { history } = await run
  t.equal(history.length, 3, 'training finished')
  t.ok(answers.length >= 3 && saved >= 3, `${answers.length} rounds of reads during training`)
  const copy = await loadModel(join(scratch, 'during.safetensors'))
  t.ok((await copy.predict(left[0], right[0])) >= 0, 'a file saved during training loads and predicts')
  copy.dispose()
  m.dispose()
})

t.test('dispose() during any job: ERR_BUSY, and the model stays usable', async (t) => {
  const m = await createModel({ seed: 13 })
  const folderSupport = datasets.fromArrays({ images: test.images.subarray(0, 10 * 784), labels: Array.from(test.labels.subarray(0, 10)), width: 28, height: 28, classes: test.classes })
  const jobs = {
    predict: () => m.predict(left[0], right[0]),
    'batch predict': () => m.predict(left, right),
    embed: () => m.embed(left),
    evaluate: () => m.evaluate(data, { ways: 0 }),
    classify: () => m.classify(left.slice(0, 5), folderSupport),
    save: () => m.save(join(scratch, 'busy.safetensors')),
    train: () => m.train({ data, epochs: 1 }),
    'a job that fails': () => m.predict(join(scratch, 'no-such.png'), left[0])
  }
  for (const [name, start] of Object.entries(jobs)) {
    const job = start()
    // At once (the job still in JavaScript) and once the addon runs it.
    t.throws(() => m.dispose(), { code: 'ERR_BUSY' }, `${name}: dispose() right after the call`)
    await new Promise((resolve) => setImmediate(resolve))
    t.throws(() => m.dispose(), { code: 'ERR_BUSY' }, `${name}: dispose() while it runs`)
    const outcome = await job.then(() => 'done', (err) => err.code)
    t.equal(outcome, name === 'a job that fails' ? 'ERR_BAD_FILE' : 'done', `${name}: the job itself ends as it would have`)
    const p = await m.predict(left[1], right[1])
    t.ok(p >= 0 && p <= 1, `${name}: the model still predicts`)
  }
  m.dispose()
  await t.rejects(m.predict(left[0], right[0]), { code: 'ERR_DISPOSED' }, 'once idle, dispose() works')
})

t.test('two models train at once; each ends as it would alone', async (t) => {
  const [a, b] = await Promise.all([
    train({ data, epochs: 2, seed: 21, threads: 1 }),
    train({ data, epochs: 2, seed: 22, threads: 1 })
  ])
  t.same([a.history.length, b.history.length], [2, 2], 'both finish')
  const alone = await train({ data, epochs: 2, seed: 21, threads: 1 })
  const some = [left.slice(0, 30), right.slice(0, 30)]
  t.same(await a.model.predict(...some), await alone.model.predict(...some), 'trained beside another: the same weights as alone')
  t.notSame(await a.model.predict(...some), await b.model.predict(...some), 'and the two differ (different seeds)')
  for (const m of [a.model, b.model, alone.model]) m.dispose()
})

t.test('concurrent saves to one path leave one complete file, and nothing else', async (t) => {
  const dir = join(scratch, 'saves')
  const other = await createModel({ seed: 14 })
  const path = join(dir, 'model.safetensors')
  mkdirSync(dir)
  await Promise.all(Array.from({ length: 10 }, (_, k) => (k % 2 ? model : other).save(path)))
  t.same(readdirSync(dir), ['model.safetensors'], 'no temporary files left')
  const loaded = await loadModel(path)
  const p = await loaded.predict(left[0], right[0])
  t.ok(p === await model.predict(left[0], right[0]) || p === await other.predict(left[0], right[0]), 'the file is one of the two models, whole')
  const many = await Promise.all(Array.from({ length: 20 }, () => loadModel(path)))
  t.equal(new Set(await Promise.all(many.map((m) => m.predict(left[0], right[0])))).size, 1, '20 concurrent loads of one file agree')
  for (const m of [...many, loaded, other]) m.dispose()
})

t.test('worker threads predict from one file while the main thread trains', async (t) => {
  const file = join(scratch, 'shared.safetensors')
  await model.save(file)
  const count = 60
  const runWorker = (offset) => new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./children/predict-worker.mjs', import.meta.url), {
      workerData: { file, left: left.slice(offset, offset + count), right: right.slice(offset, offset + count) }
    })
    let result
    worker.on('message', (m) => { result = m })
    worker.on('error', reject)
    worker.on('exit', (code) => (code === 0 ? resolve(result) : reject(new Error(`worker exited with ${code}`))))
  })
  const [trained, ...results] = await Promise.all([train({ data, epochs: 1, seed: 23 }), runWorker(0), runWorker(60), runWorker(120)])
  t.equal(trained.history.length, 1, 'the main thread trained meanwhile')
  trained.model.dispose()
  results.forEach((ps, w) => t.same(ps, sequential.slice(w * count, (w + 1) * count), `worker ${w + 1}: the main thread's answers`))
})

t.teardown(() => model.dispose())
