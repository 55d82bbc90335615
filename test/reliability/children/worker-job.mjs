// A worker_threads job for children/worker-host.mjs: trains (writing checkpoints into outDir)
// or predicts in a loop, and tells its host when it has started. With exitAfterMs, it calls
// process.exit(3) (which ends only this worker) that long after it started.
import { isMainThread, parentPort, workerData } from 'node:worker_threads'
import { createModel, train } from 'siamese-torch'
import { tinyDigits } from '../common.mjs'

// Run on its own (not as a worker), it has nothing to do.
if (isMainThread) process.exit(0)

const { mode, outDir, exitAfterMs } = workerData
const data = await tinyDigits()
let started = false
const start = () => {
  if (started) return
  started = true
  parentPort.postMessage('started')
  if (exitAfterMs !== undefined) setTimeout(() => process.exit(3), exitAfterMs)
}
if (mode === 'train') {
  await train({ data, epochs: 50, saveEvery: 1, outDir, seed: 6, onProgress: (e) => { if (e.type === 'batch') start() } })
} else {
  const model = await createModel({ seed: 2 })
  const images = Array.from({ length: data.test.count }, (_, i) => data.test.images.subarray(i * 784, (i + 1) * 784))
  for (;;) {
    const jobs = [model.predict(images, images.slice().reverse()), model.embed(images), model.predict(images[0], images[1])]
    start()
    await Promise.all(jobs)
  }
}
