// Smoke test of the built package under whichever Node runs it (scripts/node-versions.sh runs it
// under Node 20, 22 and 24): one Node-API build must load and work in all of them. Plain Node,
// no test framework and no devDependencies; throws (exit 1) on the first failure and ends with
// one JSON line. A few seconds on a 2-core machine.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'

import * as esm from '../../dist/index.mjs'

const started = process.hrtime.bigint()
const here = dirname(fileURLToPath(import.meta.url))
const cjsEntry = join(here, '..', '..', 'dist', 'index.js')
const cjs = createRequire(import.meta.url)(cjsEntry)

// ESM and CommonJS: the same objects (one addon, one error class).
for (const name of ['version', 'train', 'createModel', 'loadModel', 'datasets', 'SiameseTorchError']) {
  assert.equal(typeof esm[name], typeof cjs[name], `${name} in both entry points`)
  assert.ok(esm[name], `${name} is exported`)
}
assert.equal(esm.train, cjs.train, 'ESM and CommonJS give the same train')

const { version, train, loadModel, datasets } = esm
const v = version()
assert.match(v.libtorch, /^\d+\.\d+/, `version().libtorch: ${v.libtorch}`)
assert.equal(cjs.version().libtorch, v.libtorch)

// A tiny in-memory set: 200 train and 100 test digits, evenly spaced (the embedded sets are
// sorted by class, so the first ones would all be zeros).
function spread (set, count) {
  const size = set.width * set.height
  const step = Math.floor(set.count / count)
  const images = new Uint8Array(count * size)
  const labels = []
  for (let i = 0; i < count; i++) {
    images.set(set.images.subarray(i * step * size, (i * step + 1) * size), i * size)
    labels.push(set.labels[i * step])
  }
  return datasets.fromArrays({ images, labels, width: set.width, height: set.height, classes: set.classes })
}
const digits = await datasets.embedded()
const data = { train: spread(digits.train, 200), test: spread(digits.test, 100) }

const { model, history } = await train({ data, epochs: 1, batchSize: 32, threads: 1, embeddingSize: 32, seed: 1 })
const dir = mkdtempSync(join(tmpdir(), 'siamese-torch-node-versions-'))
try {
  assert.equal(history.length, 1, 'one epoch of history')
  for (const [key, value] of Object.entries(history[0])) {
    assert.ok(Number.isFinite(value), `history[0].${key} is finite: ${value}`)
  }

  const pixels = digits.test.width * digits.test.height
  const a = digits.test.images.slice(0, pixels)
  const b = digits.test.images.slice(pixels, 2 * pixels)
  const p = await model.predict(a, b)
  assert.ok(typeof p === 'number' && p >= 0 && p <= 1, `predict: ${p} in [0, 1]`)
  const [e] = await model.embed(a)
  assert.ok(e instanceof Float32Array, 'embed gives a Float32Array')
  assert.equal(e.length, 32, 'embedding length')

  const file = join(dir, 'model.safetensors')
  await model.save(file)
  const again = await loadModel(file, { device: 'cpu' })
  try {
    const q = await again.predict(a, b)
    assert.ok(Math.abs(q - p) < 1e-6, `the loaded model predicts the same: ${q} vs ${p}`)
  } finally {
    again.dispose()
  }
} finally {
  model.dispose()
  rmSync(dir, { recursive: true, force: true })
}

// A worker thread loads the addon too (it is context-aware).
const job = `
  const { parentPort, workerData } = require('node:worker_threads')
  const { createModel } = require(workerData.entry)
  ;(async () => {
    const model = await createModel({ embeddingSize: 8, seed: 1 })
    const image = new Uint8Array(784).fill(128)
    const p = await model.predict(image, image)
    model.dispose()
    parentPort.postMessage({ p })
  })().catch((err) => parentPort.postMessage({ error: String(err && err.stack) }))
`
const fromWorker = await new Promise((resolve, reject) => {
  const worker = new Worker(job, { eval: true, workerData: { entry: cjsEntry } })
  let message
  worker.on('message', (m) => { message = m })
  worker.on('error', reject)
  worker.on('exit', (code) => (code === 0 ? resolve(message) : reject(new Error(`worker exited with ${code}`))))
})
assert.ok(fromWorker, 'the worker answered')
assert.ok(!fromWorker.error, `worker: ${fromWorker.error}`)
assert.ok(fromWorker.p >= 0 && fromWorker.p <= 1, `worker predict: ${fromWorker.p} in [0, 1]`)

const seconds = Math.round(Number(process.hrtime.bigint() - started) / 1e7) / 100
console.log(JSON.stringify({ node: process.version, napi: process.versions.napi, libtorch: v.libtorch, ok: true, seconds }))
