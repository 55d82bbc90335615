// The CUDA test suite, run by scripts/gpu/run.sh on a GPU machine (node:test: that machine has
// no npm, so no tap). SIAMESE_TORCH_TEST_DEVICE=cpu runs the same checks on the CPU (dry run).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createModel, datasets, loadModel, train, version } from '../../dist/index.mjs'

const device = process.env.SIAMESE_TORCH_TEST_DEVICE ?? 'cuda'
const onGpu = device !== 'cpu'
const { train: trainSplit, test: testSplit } = await datasets.embedded()
const image = (i) => testSplit.images.slice(i * 784, (i + 1) * 784)

test('the build links CUDA and sees the GPU', { skip: !onGpu }, () => {
  const v = version()
  assert.equal(v.cudaBuild, true, 'built against a CUDA LibTorch')
  assert.equal(v.cuda, true, 'a GPU is visible')
  assert.ok(v.cudaDevices >= 1 && v.gpus.length === v.cudaDevices)
  console.log(JSON.stringify(v.gpus))
})

test("device: 'auto' picks the GPU when there is one", async () => {
  const model = await createModel({ device: 'auto' })
  assert.equal(model.device, onGpu ? 'cuda:0' : 'cpu')
  model.dispose()
})

test('same seed: GPU and CPU training reach the same accuracy within 0.5 points', async () => {
  const options = { data: { train: trainSplit, test: testSplit }, epochs: 2, seed: 3 }
  const gpu = await train({ ...options, device })
  const cpu = await train({ ...options, device: 'cpu' })
  const a = gpu.history.at(-1).testAccuracy
  const b = cpu.history.at(-1).testAccuracy
  console.log(`accuracy after 2 epochs: ${device} ${(100 * a).toFixed(2)}%, cpu ${(100 * b).toFixed(2)}%; ` +
    `pairs/s ${device} ${gpu.history.at(-1).pairsPerSecond.toFixed(0)}, cpu ${cpu.history.at(-1).pairsPerSecond.toFixed(0)}`)
  assert.ok(Math.abs(a - b) <= 0.005, `|${a} - ${b}| <= 0.005`)
  assert.ok(a >= 0.95, 'the GPU run reaches the 95% of the defaults')

  // A model trained on the GPU, saved, and loaded on the CPU predicts the same.
  const dir = mkdtempSync(join(tmpdir(), 'siamese-gpu-'))
  await gpu.model.save(join(dir, 'm.safetensors'))
  const back = await loadModel(join(dir, 'm.safetensors'), { device: 'cpu' })
  const left = Array.from({ length: 100 }, (_, i) => image(i))
  const right = Array.from({ length: 100 }, (_, i) => image(i + 100))
  const pg = await gpu.model.predict(left, right)
  const pc = await back.predict(left, right)
  const worst = Math.max(...pg.map((p, i) => Math.abs(p - pc[i])))
  console.log(`largest GPU/CPU difference of P(same) over 100 pairs: ${worst.toExponential(2)}`)
  assert.ok(worst < 1e-3, `worst difference ${worst} < 1e-3`)
  for (const m of [gpu.model, cpu.model, back]) m.dispose()
})

test('inference on the device: predict, embed, evaluate, classify, concurrent calls', async () => {
  const model = await createModel({ device, seed: 1 })
  const [e] = await model.embed(image(0))
  assert.equal(e.length, 512)
  assert.ok(e.every(Number.isFinite))
  const p = await model.predict(image(0), image(1))
  assert.ok(p >= 0 && p <= 1)
  const many = await Promise.all(Array.from({ length: 64 }, (_, i) => model.predict(image(i), image(i + 1))))
  const once = await model.predict(Array.from({ length: 64 }, (_, i) => image(i)), Array.from({ length: 64 }, (_, i) => image(i + 1)))
  assert.ok(many.every((x, i) => Math.abs(x - once[i]) < 1e-4), '64 concurrent calls agree with one batch')
  const m = await model.evaluate(testSplit, { ways: 5, episodes: 50 })
  assert.ok(m.accuracy > 0 && m.oneShotAccuracy !== null)
  model.dispose()
})

test('the training step captured as a CUDA graph trains as the eager one does', { skip: !onGpu }, async () => {
  // The defaults: batch 32 over 8,004 triplets leaves a last batch of 4, which runs eagerly.
  const options = { data: { train: trainSplit, test: testSplit }, epochs: 2, seed: 3, device }
  const eager = await train(options)
  const graphed = await train({ ...options, cudaGraph: true })
  const a = eager.history.at(-1)
  const b = graphed.history.at(-1)
  console.log(`cudaGraph: accuracy ${(100 * b.testAccuracy).toFixed(2)}% against eager ${(100 * a.testAccuracy).toFixed(2)}%; ` +
    `pairs/s ${b.pairsPerSecond.toFixed(0)} against ${a.pairsPerSecond.toFixed(0)}`)
  assert.ok(Math.abs(a.testAccuracy - b.testAccuracy) <= 0.01, `|${a.testAccuracy} - ${b.testAccuracy}| <= 0.01`)
  assert.ok(Math.abs(a.trainLoss - b.trainLoss) <= 0.05 * a.trainLoss, `train loss ${b.trainLoss} against ${a.trainLoss}`)
  // The weights the graph trained are the model's: predict and a resumed run see them.
  const p = await graphed.model.predict(image(0), image(1))
  assert.ok(p >= 0 && p <= 1)
  eager.model.dispose()
  graphed.model.dispose()
  const bf16 = await train({ ...options, epochs: 1, precision: 'bf16', cudaGraph: true })
  console.log(`cudaGraph in bf16: accuracy ${(100 * bf16.history[0].testAccuracy).toFixed(2)}%, ${bf16.history[0].pairsPerSecond.toFixed(0)} pairs/s`)
  assert.ok(bf16.history[0].testAccuracy > 0.9, `bf16 accuracy ${bf16.history[0].testAccuracy}`)
  bf16.model.dispose()
  const reference = await train({ ...options, epochs: 1, pairs: 'reference', cudaGraph: true })
  assert.ok(reference.history[0].testAccuracy > 0.8, `reference accuracy ${reference.history[0].testAccuracy}`)
  reference.model.dispose()
})

test('two ranks on the GPU (Gloo on CUDA tensors) end with the weights of one process', { skip: !onGpu || !version().distributed.includes('gloo') }, async () => {
  // One GPU: NCCL refuses two ranks on it, so the ranks sum over Gloo, which takes CUDA tensors.
  const { spawn } = await import('node:child_process')
  const { readFileSync } = await import('node:fs')
  const dir = mkdtempSync(join(tmpdir(), 'siamese-gpu-dist-'))
  const options = { epochs: 1, batchSize: 64, seed: 5, optimizer: 'sgd', lr: 0.003, saveEvery: 0, device }
  const rank = (o, out) => new Promise((resolve) => {
    const child = spawn(process.execPath, [join(import.meta.dirname, '..', 'helpers', 'dist-rank.mjs'), JSON.stringify(o), out], { stdio: 'inherit' })
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000)
    child.on('exit', () => { clearTimeout(timer); resolve(JSON.parse(readFileSync(out, 'utf8'))) })
  })
  const one = await rank(options, join(dir, 'one.json'))
  const port = 29500 + Math.floor(Math.random() * 1000)
  const ranks = await Promise.all([0, 1].map((r) => rank({ ...options, distributed: { rank: r, worldSize: 2, masterPort: port, backend: 'gloo', timeoutMs: 60_000 } }, join(dir, `r${r}.json`))))
  for (const r of ranks) assert.ok(!r.error, JSON.stringify(r.error))
  const worst = Math.max(...ranks[0].embeddings.flatMap((row, i) => row.map((v, j) => Math.abs(v - one.embeddings[i][j]))))
  console.log(`2 ranks on ${device} over Gloo: largest embedding difference from one process ${worst.toExponential(2)}; ` +
    `all-reduce wait ${(ranks[0].distributed.allReduceWaitSeconds * 1000).toFixed(0)} ms in the epoch`)
  assert.ok(worst < 1e-4, `worst difference ${worst} < 1e-4`)
})

test('mined triplet training runs on the device', async () => {
  const { model, history } = await train({
    data: { train: trainSplit, test: testSplit }, epochs: 1, loss: 'triplet', mining: 'batch-hard', device, seed: 2
  })
  assert.ok(Number.isFinite(history[0].trainLoss))
  assert.ok(history[0].testAccuracy > 0.8, `accuracy ${history[0].testAccuracy}`)
  model.dispose()
})

test('a checkpoint written on the device resumes on the device', async () => {
  const out = mkdtempSync(join(tmpdir(), 'siamese-gpu-ckpt-'))
  const first = await train({ data: { train: trainSplit, test: testSplit }, epochs: 1, saveEvery: 1, outDir: out, device, seed: 4 })
  first.model.dispose()
  const resumed = await train({ data: { train: trainSplit, test: testSplit }, epochs: 2, resume: join(out, 'checkpoint-epoch-1.safetensors'), device, seed: 4 })
  assert.equal(resumed.history.length, 1)
  assert.equal(resumed.history[0].epoch, 2)
  resumed.model.dispose()
})
