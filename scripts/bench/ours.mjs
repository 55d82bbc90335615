// One siamese-torch run of the benchmark, in its own process so that its peak memory is its own.
// Prints one JSON line. Usage: node ours.mjs THREADS SEED [IDX_DIR] [--precision fp32|bf16]
// (default: the embedded digits, fp32). SIAMESE_TORCH_BENCH_DEVICE (default cpu) and
// SIAMESE_TORCH_BENCH_BATCH (default 64) for the GPU run.
// --precision other than fp32 is passed to train() and evaluate() (fp32 passes nothing, so the
// run is what it always was). A library whose train() does not take it (an unknown option, or a
// CPU it refuses) gives one JSON line with `skipped` and the reason, and exit status 0: the
// benchmark notes it and goes on.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { datasets, train } from '../../dist/index.mjs'
import { evaluateIn, loadedLibraries, precisionOption, trainIn } from './common.mjs'

const args = process.argv.slice(2)
const { precision, options: precisionOptions } = precisionOption(args)
const threads = Number(args[0] ?? 2)
const seed = Number(args[1] ?? 0)
const dir = args[2]
const device = process.env.SIAMESE_TORCH_BENCH_DEVICE ?? 'cpu'
const batchSize = Number(process.env.SIAMESE_TORCH_BENCH_BATCH ?? 64)
const data = dir === undefined ? await datasets.embedded() : await datasets.idx(dir)
const loop = monitorEventLoopDelay({ resolution: 5 })
loop.enable()
// SIAMESE_TORCH_BENCH_CUDA_GRAPH=1: the training step captured as a CUDA graph (the GPU run).
const graph = process.env.SIAMESE_TORCH_BENCH_CUDA_GRAPH === '1' ? { cudaGraph: true } : {}
const trained = await trainIn(precision, () => train({ data, pairs: 'reference', epochs: 1, threads, seed, device, batchSize, ...graph, ...precisionOptions }))
if (trained === undefined) process.exit(0)
const { model, history } = trained
loop.disable()
const { test } = data

// Evaluation throughput: the fixed test pairs, as training measures them, warm (PyTorch's
// scripts run one untimed batch first, so that oneDNN has built its inference primitives).
await evaluateIn(model, test, precision)
const { metrics, seconds: evalSeconds, evalPrecision } = await evaluateIn(model, test, precision)
// The peak so far covers what PyTorch's scripts do (training and evaluation): the figure compared
// with theirs. The predict figures below add their own buffers (maxRssWithPredictMiB).
const trainEvalRssMiB = process.resourceUsage().maxRSS / 1024

// Single-pair predict latency, one call after the other.
const image = (i) => test.images.slice(i * 784, (i + 1) * 784)
const latencies = []
for (let i = 0; i < 300; i++) {
  const t0 = performance.now()
  await model.predict(image(i), image(i + 1))
  latencies.push(performance.now() - t0)
}
latencies.sort((a, b) => a - b)

// Batch-1024 predict throughput.
const left = Array.from({ length: 1024 }, (_, i) => image(i))
const right = Array.from({ length: 1024 }, (_, i) => image(1024 + (i % 900)))
await model.predict(left, right)
const started = performance.now()
const batches = 5
for (let b = 0; b < batches; b++) await model.predict(left, right)
const batchSeconds = (performance.now() - started) / 1000

console.log(JSON.stringify({
  tool: 'siamese-torch',
  precision,
  evalPrecision,
  threads,
  device: model.device,
  batchSize,
  trainPairsPerSecond: history[0].pairsPerSecond,
  testAccuracy: history[0].testAccuracy,
  evalPairsPerSecond: metrics.pairs / evalSeconds,
  predictMedianMs: latencies[Math.floor(latencies.length / 2)],
  predictP99Ms: latencies[Math.floor(latencies.length * 0.99)],
  batch1024PairsPerSecond: (batches * 1024) / batchSeconds,
  eventLoopMaxDelayMs: loop.max / 1e6,
  maxRssMiB: trainEvalRssMiB,
  maxRssWithPredictMiB: process.resourceUsage().maxRSS / 1024,
  ...loadedLibraries()
}))
model.dispose()
