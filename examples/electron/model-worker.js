'use strict'
// The model's own process: an Electron utility process (main.js forks it with
// utilityProcess.fork) that loads siamese-torch, trains and predicts. Loading LibTorch blocks the
// thread that loads it for a few hundred milliseconds, and a native crash ends the process it
// happens in: here neither touches the main process or a window.
//
// Messages in (message.data on process.parentPort):
//   { id, type: 'train', options }
//       Trains a new model on the embedded digits and writes options.outDir/model.safetensors.
//       options: siamese-torch's train() options (epochs, seed, threads, outDir, ...; `data` is
//       this file's choice), plus `every`: train and test on every n-th digit only, for a quick
//       run (every: 10 keeps 801 training and 200 test digits).
//   { id, type: 'predict', outDir, pick: [i, j] }
//       P(same) for test digits i and j of the embedded set (0..1995).
//   { id, type: 'predict', outDir, a, b }
//       P(same) for two 28x28 grayscale images given as raw pixels: a Uint8Array of 784 bytes
//       (or an array of 784 numbers), row by row, 0 black to 255 white.
//   Predict uses the model trained last; before any training it loads outDir/model.safetensors.
// Messages out (process.parentPort.postMessage):
//   { type: 'ready', libtorch, loadMs }   once, after the addon and LibTorch have loaded
//   { type: 'ready', error }              the same, when they could not be loaded
//   { type: 'progress', id, event }       training progress: siamese-torch's onProgress events
//   { id, result }                        train: { history, modelPath };
//                                         predict: { pSame, labels, images }, labels and images
//                                         (the two Uint8Arrays) only for `pick`
//   { id, error: { code, message } }      siamese-torch's codes (ERR_INVALID_ARG, ERR_BUSY, ...)
//                                         and this file's ERR_NO_MODEL, ERR_UNKNOWN_MESSAGE
//
// Under plain Node (no process.parentPort) nothing is wired: require this file and call
// handle(message, post), as test/electron.test.mjs does through a stand-in parentPort.

const fs = require('node:fs')
const path = require('node:path')

// The first call into the addon loads it and LibTorch with it (a synchronous dlopen); do it now,
// at start, rather than in the middle of the first request.
const siamese = require('siamese-torch')
let loadError = null
let libtorch = null
const started = performance.now()
try {
  libtorch = siamese.version().libtorch
} catch (err) {
  loadError = err
}
const loadMs = performance.now() - started

const SIZE = 28 * 28

let model = null // the SiameseModel predictions use
let modelFile = null // the file it came from (or was saved to)
let loading = null // a loadModel in progress, shared by concurrent predicts
let training = false
let digits = null // the embedded digits, read once

class WorkerError extends Error {
  constructor (code, message) {
    super(message)
    this.code = code
  }
}

// The embedded digits, read once (in a packaged app, from the unpacked copy beside app.asar:
// see asarUnpack in README.md).
function embeddedDigits () {
  digits ??= siamese.datasets.embedded()
  return digits
}

// Every `every`-th image of a set (the embedded sets are class by class: all classes stay).
function everyNth (set, every) {
  const kept = []
  for (let i = 0; i < set.count; i += every) kept.push(i)
  const images = new Uint8Array(kept.length * SIZE)
  kept.forEach((k, j) => images.set(set.images.subarray(k * SIZE, (k + 1) * SIZE), j * SIZE))
  return siamese.datasets.fromArrays({
    images, labels: kept.map((k) => set.labels[k]), width: set.width, height: set.height, classes: set.classes
  })
}

// Frees a model that is being replaced; one still busy with a call (ERR_BUSY) is left to the
// garbage collector, which frees its weights once nothing refers to it.
function retire (old) {
  try {
    old?.dispose()
  } catch {}
}

async function trainModel (message, post) {
  const { every, ...options } = message.options ?? {}
  if (every !== undefined && !(Number.isInteger(every) && every >= 1)) {
    throw new WorkerError('ERR_INVALID_ARG', `options.every must be a whole number >= 1, got ${every}`)
  }
  if (training) throw new WorkerError('ERR_BUSY', 'a model is already training')
  training = true
  try {
    const split = await embeddedDigits()
    const data = every > 1 ? { name: split.name, train: everyNth(split.train, every), test: everyNth(split.test, every) } : split
    const { model: trained, history } = await siamese.train({
      ...options,
      data,
      onProgress: (event) => post({ type: 'progress', id: message.id, event })
    })
    retire(model)
    model = trained
    modelFile = typeof options.outDir === 'string' ? path.resolve(options.outDir, 'model.safetensors') : null
    return { history, modelPath: modelFile }
  } finally {
    training = false
  }
}

async function currentModel (outDir) {
  const file = typeof outDir === 'string' ? path.resolve(outDir, 'model.safetensors') : null
  if (model !== null && (file === null || file === modelFile)) return model
  if (file === null || !fs.existsSync(file)) {
    throw new WorkerError('ERR_NO_MODEL', `no model yet: train one first${file ? ` (${file} does not exist)` : ''}`)
  }
  loading ??= siamese.loadModel(file).finally(() => { loading = null })
  const loaded = await loading
  if (model !== loaded) {
    retire(model)
    model = loaded
    modelFile = file
  }
  return loaded
}

function pixels (value, name) {
  if (value instanceof Uint8Array && value.length === SIZE) return value
  if (Array.isArray(value) && value.length === SIZE && value.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) {
    return Uint8Array.from(value)
  }
  // Anything else is refused here, file paths included: a renderer must not make this process
  // open files of its choosing.
  throw new WorkerError('ERR_INVALID_ARG', `${name} must be ${SIZE} grayscale pixels (a Uint8Array of 784 bytes)`)
}

async function predict (message) {
  const m = await currentModel(message.outDir)
  if (message.pick !== undefined) {
    const { test } = await embeddedDigits()
    const pick = message.pick
    if (!Array.isArray(pick) || pick.length !== 2 || !pick.every((i) => Number.isInteger(i) && i >= 0 && i < test.count)) {
      throw new WorkerError('ERR_INVALID_ARG', `pick must be two test image numbers in 0..${test.count - 1}`)
    }
    const images = pick.map((i) => test.images.slice(i * SIZE, (i + 1) * SIZE))
    const pSame = await m.predict(images[0], images[1])
    return { pSame, labels: pick.map((i) => test.classes[test.labels[i]]), images }
  }
  return { pSame: await m.predict(pixels(message.a, 'a'), pixels(message.b, 'b')), labels: null, images: null }
}

/**
 * Handles one request and posts its reply (and, for training, its progress) with `post`.
 * Never throws: every failure becomes `{ id, error: { code, message } }`.
 */
async function handle (message, post) {
  const id = message?.id
  try {
    if (loadError !== null) throw loadError
    let result
    if (message?.type === 'train') result = await trainModel(message, post)
    else if (message?.type === 'predict') result = await predict(message)
    else throw new WorkerError('ERR_UNKNOWN_MESSAGE', `unknown message type ${JSON.stringify(message?.type)}`)
    post({ id, result })
  } catch (err) {
    post({ id, error: { code: typeof err?.code === 'string' ? err.code : 'ERR_UNKNOWN', message: String(err?.message ?? err) } })
  }
}

const ready = loadError === null
  ? { type: 'ready', libtorch, loadMs }
  : { type: 'ready', error: { code: loadError.code ?? 'ERR_UNKNOWN', message: loadError.message } }

if (process.parentPort !== undefined) {
  const port = process.parentPort
  const post = (reply) => port.postMessage(reply)
  port.on('message', (event) => { handle(event.data, post) })
  post(ready)
}

module.exports = { handle, ready }
