// The event-loop stalls a user of siamese-torch sees, in a fresh process: the first call, which
// loads the native addon and LibTorch with it (a synchronous dlopen: the whole cost blocks the
// loop), and then training, from the call of train() to its first batch and over its first epoch
// (measured by monitorEventLoopDelay at 1 ms resolution: the largest delay of a timer, in ms).
// Prints one JSON line. Usage: node stalls.mjs [IDX_DIR]   (default: the embedded digits)
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { datasets, train, version } from '../../dist/index.mjs'

const dir = process.argv[2]

// The first call: dist/ itself loads without the addon; version() loads it.
let started = performance.now()
version()
const loadMs = performance.now() - started
started = performance.now()
version()
const secondCallMs = performance.now() - started

const data = dir === undefined ? await datasets.embedded() : await datasets.idx(dir)

// From the call to the first batch: option checks, the data handed to the addon, the trainer's start.
const start = monitorEventLoopDelay({ resolution: 1 })
const epoch = monitorEventLoopDelay({ resolution: 1 })
start.enable()
epoch.enable()
let firstBatch
const running = train({
  data,
  epochs: 1,
  pairs: 'reference',
  onProgress: (e) => {
    if (e.type === 'batch' && firstBatch === undefined) {
      firstBatch = performance.now()
      start.disable()
    }
  }
})
started = performance.now()
const { model } = await running
epoch.disable()
model.dispose()

console.log(JSON.stringify({
  data: dir ?? 'embedded',
  trainImages: data.train.count,
  loadMs,
  secondCallMs,
  trainStartStallMs: start.max / 1e6,
  firstBatchAfterMs: firstBatch === undefined ? null : firstBatch - started,
  trainStallMs: epoch.max / 1e6
}))
