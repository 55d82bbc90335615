// Compute precision (fp32, bf16) and the default thread count: what version() says, what models
// and runs use, what files record, and the refusals.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { train, createModel, loadModel, version } from 'siamese-torch'
import { smallDigits } from './helpers/small-data.mjs'
import { node, run } from './helpers/run.mjs'

const data = await smallDigits()
const scratch = mkdtempSync(join(tmpdir(), 'siamese-precision-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
const v = version()
const noBf16 = !v.bf16 && 'this CPU has no native bfloat16'

// The dtypes of a safetensors file's tensors, by name.
function dtypes (file) {
  const buffer = readFileSync(file)
  const header = JSON.parse(buffer.subarray(8, 8 + Number(buffer.readBigUInt64LE(0))).toString('utf8'))
  return Object.entries(header).filter(([k]) => k !== '__metadata__').map(([k, d]) => [k, d.dtype])
}

// version() as a child process with `env` sees it.
function childVersion (env, prefix = []) {
  const r = run(prefix[0] ?? process.execPath, [...prefix.slice(1), ...(prefix.length > 0 ? [process.execPath] : []), '-e',
    "console.log(JSON.stringify(require('siamese-torch').version()))"], { env })
  if (r.status !== 0) throw new Error(r.stderr)
  return JSON.parse(r.stdout)
}

t.test('the default thread count: the CPUs this process may use, and why', async (t) => {
  t.ok(v.cpus >= 1 && v.threads >= 1)
  if (process.env.OMP_NUM_THREADS === undefined && process.env.LOCAL_WORLD_SIZE === undefined) {
    t.equal(v.threads, v.cpus, 'all the CPUs this process may use')
    t.match(v.threadsBasis, /^(affinity|cgroup quota)$/)
  }
  const omp = childVersion({ OMP_NUM_THREADS: '1', LOCAL_WORLD_SIZE: '' })
  t.equal(omp.threads, 1)
  t.equal(omp.threadsBasis, 'OMP_NUM_THREADS', "the user's OMP_NUM_THREADS wins")
  const ranks = childVersion({ OMP_NUM_THREADS: '', LOCAL_WORLD_SIZE: '2' })
  t.equal(ranks.threads, Math.max(1, Math.floor(ranks.cpus / 2)), 'two local ranks share the CPUs')
  t.equal(ranks.threadsBasis, '2 local ranks')
  const taskset = run('sh', ['-c', 'command -v taskset'])
  if (taskset.status === 0) {
    const pinned = childVersion({ OMP_NUM_THREADS: '', LOCAL_WORLD_SIZE: '' }, ['taskset', '-c', '0'])
    t.equal(pinned.cpus, 1, 'an affinity mask of one CPU is one CPU')
    t.equal(pinned.threads, 1)
  }
})

t.test('a model without a thread count uses the default; two runs at once share it', async (t) => {
  const a = await createModel()
  const b = await createModel()
  t.equal(a.threads, v.threads, 'the default while nothing trains')
  const seen = []
  const watch = () => { seen.push(a.threads) }
  await Promise.all([
    a.train({ data, epochs: 1, onProgress: watch }),
    b.train({ data, epochs: 1 })
  ])
  t.ok(seen.length > 0)
  t.ok(seen.includes(Math.max(1, Math.floor(v.threads / 2))), `shared while both trained: ${[...new Set(seen)]}`)
  t.equal(a.threads, v.threads, 'the whole default again once both are done')
  const fixed = await createModel({ threads: 1 })
  t.equal(fixed.threads, 1, 'a count given is kept')
  for (const m of [a, b, fixed]) m.dispose()
})

t.test('precision: fp32 by default; bad values refused', async (t) => {
  const model = await createModel()
  t.equal(model.precision, 'fp32')
  model.dispose()
  await t.rejects(createModel({ precision: 'fp16' }), { code: 'ERR_INVALID_ARG', message: /precision/ })
  await t.rejects(train({ data, precision: 'half' }), { code: 'ERR_INVALID_ARG', message: /precision/ })
})

t.test('bf16 inference: float32 results close to fp32', { skip: noBf16 }, async (t) => {
  const fp32 = await createModel({ seed: 4 })
  const bf16 = await createModel({ seed: 4, precision: 'bf16' })
  t.equal(bf16.precision, 'bf16')
  const images = Array.from({ length: 32 }, (_, i) => data.test.images.subarray(i * 784, (i + 1) * 784))
  const e32 = await fp32.embed(images)
  const e16 = await bf16.embed(images)
  t.ok(e16[0] instanceof Float32Array, 'embeddings are float32')
  let diff = 0
  let norm = 0
  e32.forEach((row, i) => row.forEach((x, j) => { diff += (x - e16[i][j]) ** 2; norm += x * x }))
  const relative = Math.sqrt(diff / norm)
  t.ok(relative > 0, 'bf16 really computes differently')
  t.ok(relative < 0.03, `relative difference ${relative.toExponential(2)}`)
  const p32 = await fp32.predict(data.test.images.subarray(0, 784), data.test.images.subarray(784, 1568))
  const p16 = await bf16.predict(data.test.images.subarray(0, 784), data.test.images.subarray(784, 1568))
  t.ok(Math.abs(p32 - p16) < 0.05, `P(same) ${p32} against ${p16}`)
  fp32.dispose()
  bf16.dispose()
})

t.test('bf16 training: learns, records its precision, saves float32, resumes in bf16', { skip: noBf16 }, async (t) => {
  const outDir = join(scratch, 'bf16')
  const { model, history } = await train({ data, epochs: 2, precision: 'bf16', saveEvery: 1, outDir, threads: 1, seed: 2 })
  t.equal(model.precision, 'bf16', 'the trained model keeps its precision for inference')
  t.ok(history[1].testAccuracy > 0.7, `accuracy ${history[1].testAccuracy}`)
  t.ok(history[1].trainLoss < history[0].trainLoss, 'the loss falls')
  for (const file of ['model.safetensors', 'checkpoint-epoch-1.safetensors']) {
    t.ok(dtypes(join(outDir, file)).every(([, d]) => d === 'F32'), `${file} holds float32 tensors only`)
  }
  t.equal(JSON.parse(model.metadata.train_options).precision, 'bf16', 'recorded in the files')

  const loaded = await loadModel(join(outDir, 'model.safetensors'))
  t.equal(loaded.precision, 'fp32', 'a file loads in fp32 unless asked')
  const loaded16 = await loadModel(join(outDir, 'model.safetensors'), { precision: 'bf16' })
  t.equal(loaded16.precision, 'bf16')
  const again = await train({ resume: join(outDir, 'checkpoint-epoch-1.safetensors'), data, epochs: 2 })
  t.equal(again.model.precision, 'bf16', 'a resume goes on in the precision it was trained in')
  t.equal(again.history.length, 1)
  for (const m of [model, loaded, loaded16, again.model]) m.dispose()
})

t.test('fp32 and bf16 runs learn alike; bf16 runs repeat exactly', { skip: noBf16 }, async (t) => {
  const options = { data, epochs: 1, threads: 1, seed: 5 }
  const a = await train(options)
  const b = await train({ ...options, precision: 'bf16' })
  const c = await train({ ...options, precision: 'bf16' })
  const diff = Math.abs(a.history[0].testAccuracy - b.history[0].testAccuracy)
  t.ok(diff < 0.1, `test accuracy ${a.history[0].testAccuracy} against ${b.history[0].testAccuracy}`)
  const probe = Array.from({ length: 8 }, (_, i) => data.test.images.subarray(i * 784, (i + 1) * 784))
  const [ea, eb, ec] = await Promise.all([a.model.embed(probe), b.model.embed(probe), c.model.embed(probe)])
  t.same(eb, ec, 'two bf16 runs with the same seed and threads end with the same weights')
  t.notSame(ea, eb, 'and not with the fp32 ones')
  for (const r of [a, b, c]) r.model.dispose()
})

t.test('bf16 where the CPU cannot: ERR_UNSUPPORTED, nothing left behind', async (t) => {
  const script = `
    const { createModel, train, version } = require('siamese-torch')
    ;(async () => {
      const out = { bf16: version().bf16 }
      for (const [name, call] of [['create', () => createModel({ precision: 'bf16' })], ['train', () => train({ epochs: 1, precision: 'bf16' })]]) {
        try { await call(); out[name] = 'resolved' } catch (err) { out[name] = err.code + ': ' + err.message }
      }
      const model = await createModel()
      try { await model.train({ epochs: 1, precision: 'bf16' }); out.modelTrain = 'resolved' } catch (err) { out.modelTrain = err.code }
      out.after = model.precision
      console.log(JSON.stringify(out))
    })()`
  const r = node(['-e', script], { env: { SIAMESE_TORCH_CPU_BF16: '0' } })
  t.equal(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  t.equal(out.bf16, false)
  t.match(out.create, /^ERR_UNSUPPORTED: precision 'bf16' needs a CPU that computes bfloat16 natively/)
  t.match(out.train, /^ERR_UNSUPPORTED/)
  t.equal(out.modelTrain, 'ERR_UNSUPPORTED')
  t.equal(out.after, 'fp32', 'the model is left as it was')
})
