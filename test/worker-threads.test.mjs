// The addon is context-aware: it loads, trains and predicts in several worker_threads at once
// (the way Electron and servers load it), with no shared global state.
import t from 'tap'
import { Worker } from 'node:worker_threads'

const job = `
  const { parentPort, workerData } = require('node:worker_threads')
  const { train, datasets } = require('siamese-torch')
  ;(async () => {
    const { train: tr, test } = await datasets.embedded()
    const pick = (set, step) => {
      const idx = []
      for (let i = 0; i < set.count; i += step) idx.push(i)
      const images = new Uint8Array(idx.length * 784)
      idx.forEach((k, j) => images.set(set.images.subarray(k * 784, (k + 1) * 784), j * 784))
      return datasets.fromArrays({ images, labels: idx.map((k) => set.labels[k]), width: 28, height: 28, classes: set.classes })
    }
    const { model, history } = await train({ data: { train: pick(tr, 40), test: pick(test, 20) }, epochs: 1, seed: workerData.seed, threads: 1 })
    const p = await model.predict(test.images.slice(0, 784), test.images.slice(784, 1568))
    parentPort.postMessage({ accuracy: history[0].testAccuracy, p })
    model.dispose()
  })().catch((err) => parentPort.postMessage({ error: err.code + ': ' + err.message }))
`

function runWorker (seed) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(job, { eval: true, workerData: { seed } })
    let result
    worker.on('message', (m) => { result = m })
    worker.on('error', reject)
    worker.on('exit', (code) => (code === 0 ? resolve(result) : reject(new Error(`worker exited with ${code}`))))
  })
}

t.test('three workers train and predict at once', async (t) => {
  const results = await Promise.all([1, 2, 3].map(runWorker))
  for (const r of results) {
    t.notOk(r.error, r.error)
    t.ok(r.accuracy > 0 && r.accuracy <= 1, `accuracy ${r.accuracy}`)
    t.ok(r.p >= 0 && r.p <= 1)
  }
})

t.test('a worker terminated while it trains ends cleanly', async (t) => {
  const worker = new Worker(job.replace('epochs: 1', 'epochs: 50'), { eval: true, workerData: { seed: 9 } })
  await new Promise((resolve) => setTimeout(resolve, 1500))
  const code = await worker.terminate()
  t.equal(code, 1, 'terminated, not crashed')
  // The process is still healthy: a fresh worker works.
  const again = await runWorker(4)
  t.notOk(again.error)
})
