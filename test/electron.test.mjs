// What can be checked of siamese-torch in Electron without Electron, which cannot be downloaded
// where these tests run (docs/electron.md, "What was tested"):
// - the build refuses external buffers (Electron 21+'s V8 memory cage): both builds define
//   NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED, the addon does not compile without it, and a static
//   scan of native/addon finds no external-buffer API in use;
// - the addon is context-aware: the main thread and two worker_threads load and use it at once;
// - examples/electron under plain Node: model-worker.js run as a utility process would run it
//   (test/helpers/fake-electron/utility-host.js gives it a stand-in process.parentPort), and
//   main.js with a stand-in `electron` module (test/helpers/fake-electron/electron.js) whose
//   ipcMain handlers the test invokes as a renderer would, its utility process a real child
//   process running model-worker.js. Nothing here runs Electron, its sandbox or its packaging.
import t from 'tap'
import { fork } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { createModel, datasets, version } from 'siamese-torch'
import { root } from './helpers/run.mjs'

const example = join(root, 'examples', 'electron')
const fakeElectron = join(root, 'test', 'helpers', 'fake-electron')
const read = (...parts) => readFileSync(join(root, ...parts), 'utf8')

function scratch (t, prefix) {
  const dir = mkdtempSync(join(tmpdir(), `siamese-electron-${prefix}-`))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

// The example's own package.json names it, so `require('siamese-torch')` there does not resolve
// to this checkout by self-reference as it does in test/: a folder on NODE_PATH holding a link
// named siamese-torch stands in for the app's node_modules.
function modulesDir (t) {
  const dir = scratch(t, 'modules')
  symlinkSync(root, join(dir, 'siamese-torch'), 'dir')
  return dir
}

// ---------------------------------------------------------------------------------------------
// The memory cage.

// Source without comments, so that a comment naming an API is not taken for a use of it.
const stripComments = (source) => source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/[^\n]*/g, '')

// The arguments of the call whose opening parenthesis is at `open`, split at top-level commas.
function callArguments (source, open) {
  const args = []
  let depth = 0
  let current = ''
  for (let i = open + 1; i < source.length; i++) {
    const c = source[i]
    if ('([{'.includes(c)) depth++
    if (')]}'.includes(c)) {
      if (depth === 0) {
        args.push(current.trim())
        return args.filter((a) => a !== '')
      }
      depth--
    }
    if (c === ',' && depth === 0) {
      args.push(current.trim())
      current = ''
    } else {
      current += c
    }
  }
  throw new Error('unbalanced parentheses')
}

// Calls that make an ArrayBuffer over memory V8 did not allocate: Buffer<T>::New and
// ArrayBuffer::New with a data pointer (3 arguments or more: env, data, length[, finalizer]; the
// 2-argument forms allocate in V8), and the C API's external buffers. A static check: it reads
// the source, it does not run the addon in a memory cage.
function externalBufferCalls (source) {
  const code = stripComments(source)
  const found = []
  for (const m of code.matchAll(/\b(?:Buffer\s*<[^>]*>|ArrayBuffer)\s*::\s*New\s*\(/g)) {
    const args = callArguments(code, m.index + m[0].length - 1)
    if (args.length >= 3) found.push(`${m[0]}${args.join(', ')})`)
  }
  for (const m of code.matchAll(/\bnapi_create_external_(?:array)?buffer\b/g)) found.push(m[0])
  return found
}

t.test('both builds refuse external buffers, and the addon does not compile without that', async (t) => {
  const cmake = read('CMakeLists.txt').replace(/#[^\n]*/g, '')
  const addonDefinitions = cmake.match(/target_compile_definitions\(\$\{PROJECT_NAME\}[^)]*\)/)
  t.ok(addonDefinitions, "CMakeLists.txt sets the addon target's definitions")
  t.match(addonDefinitions?.[0], /\bNODE_API_NO_EXTERNAL_BUFFERS_ALLOWED\b/, 'cmake-js build: defined')
  t.match(addonDefinitions?.[0], /\bNAPI_VERSION=8\b/, 'cmake-js build: Node-API 8')

  const gyp = JSON.parse(read('binding.gyp').split('\n').filter((l) => !/^\s*#/.test(l)).join('\n'))
  const target = gyp.targets.find((x) => x.target_name === 'siamese_torch')
  t.ok(target.defines.includes('NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED'), 'node-gyp build: defined')
  t.ok(target.defines.includes('NAPI_VERSION=8'), 'node-gyp build: Node-API 8')

  const addon = read('native', 'addon', 'addon.cc')
  t.match(addon, /#ifndef\s+NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED\s*\n\s*#error\s+"[^"\n]*memory cage[^"\n]*"\s*\n\s*#endif/,
    'addon.cc has an #error when the define is missing')
  t.ok(read('native', 'sources.txt').split('\n').includes('native/addon/addon.cc'), 'addon.cc is built into the addon')
  t.match(addon, /NODE_API_MODULE\(/, 'registered with NODE_API_MODULE (context-aware)')
  t.match(addon, /SetInstanceData\(/, 'per-environment state (instance data), no globals for it')
})

t.test('no external-buffer API in native/addon (static scan)', async (t) => {
  // The scanner itself: it must find what it looks for, and pass over the copying forms.
  const flags = (code, count, what) => t.equal(externalBufferCalls(code).length, count, `scanner: ${what}`)
  flags('Napi::Buffer<uint8_t>::New(env, data.data(), data.size(), [](Napi::Env, uint8_t*) {});', 1, 'Buffer::New over data')
  flags('auto b = Napi::ArrayBuffer::New(env, ptr, n);', 1, 'ArrayBuffer::New over data')
  flags('napi_create_external_arraybuffer(env, p, n, nullptr, nullptr, &v);', 1, 'napi_create_external_arraybuffer')
  flags('napi_create_external_buffer(env, n, p, nullptr, nullptr, &v);', 1, 'napi_create_external_buffer')
  flags('Napi::Buffer<uint8_t>::Copy(env, p, n); Napi::ArrayBuffer::New(env, n); Napi::Buffer<char>::New(env, n);', 0,
    'copies and allocations pass')
  flags('// Napi::ArrayBuffer::New(env, data, n) would be external', 0, 'comments pass')

  const dir = join(root, 'native', 'addon')
  const files = readdirSync(dir).filter((f) => /\.(cc|h)$/.test(f))
  t.ok(files.length >= 8, `${files.length} files scanned`)
  let copies = 0
  for (const file of files) {
    const source = readFileSync(join(dir, file), 'utf8')
    t.same(externalBufferCalls(source), [], `${file}: no external buffer`)
    // Buffer copies, and typed arrays allocated in JavaScript memory to copy into (a NativePixels read).
    copies += (stripComments(source).match(/Buffer<[^>]*>::Copy\(|(Float32|Uint8)Array::New\(/g) ?? []).length
  }
  t.ok(copies >= 3, `results are copied into JavaScript memory (${copies} copying calls)`)
})

// ---------------------------------------------------------------------------------------------
// Context-awareness: the same build in several environments of one process at once.

// One environment's use of the addon: load it, build a small seeded model, predict once. It runs
// here and, as source text, in each worker.
async function useIt ({ version, createModel }) {
  const v = version()
  const model = await createModel({ embeddingSize: 8, seed: 7 })
  const a = new Uint8Array(784).map((_, i) => (i * 7) % 256)
  const b = new Uint8Array(784).map((_, i) => (i * 13) % 256)
  const p = await model.predict(a, b)
  model.dispose()
  return { libtorch: v.libtorch, p }
}

function inWorker () {
  const code = `
    const { parentPort } = require('node:worker_threads')
    const useIt = ${useIt.toString()}
    useIt(require('siamese-torch')).then((r) => parentPort.postMessage(r), (err) => parentPort.postMessage({ error: err.code + ': ' + err.message }))
  `
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, { eval: true })
    let result
    worker.on('message', (m) => { result = m })
    worker.on('error', reject)
    worker.on('exit', (code) => (code === 0 ? resolve(result) : reject(new Error(`worker exited with ${code}`))))
  })
}

t.test('the main thread and two worker_threads use the addon at once', async (t) => {
  const results = await Promise.all([useIt({ version, createModel }), inWorker(), inWorker()])
  const expected = version().libtorch
  for (const [i, r] of results.entries()) {
    t.notOk(r.error, `environment ${i}: ${r.error ?? 'no error'}`)
    t.equal(r.libtorch, expected, `environment ${i}: version()`)
    t.ok(r.p >= 0 && r.p <= 1, `environment ${i}: P(same) ${r.p}`)
    t.ok(Math.abs(r.p - results[0].p) < 1e-6, `environment ${i}: the same seeded model predicts the same`)
  }
  // And the main thread goes on after the workers' environments were torn down.
  const model = await createModel({ embeddingSize: 8 })
  t.ok((await model.predict(new Uint8Array(784), new Uint8Array(784))) >= 0, 'the main thread predicts after the workers ended')
  model.dispose()
})

// ---------------------------------------------------------------------------------------------
// The example, under plain Node.

t.test('examples/electron/requests.js matches replies to requests', async (t) => {
  const { Requests, RequestError, settle } = createRequire(import.meta.url)(join(example, 'requests.js'))
  const sent = []
  const requests = new Requests((m) => sent.push(m))
  const progress = []
  const one = requests.request('train', { options: { epochs: 1 } }, (e) => progress.push(e))
  const two = requests.request('predict', { pick: [1, 2] })
  t.same(sent, [{ options: { epochs: 1 }, id: 1, type: 'train' }, { pick: [1, 2], id: 2, type: 'predict' }], 'sent with ids')
  t.equal(requests.size, 2, 'two in flight')
  t.ok(requests.receive({ type: 'progress', id: 1, event: { type: 'batch' } }), 'progress taken')
  t.notOk(requests.receive({ id: 99, result: 1 }), 'a reply to no request is not taken')
  t.ok(requests.receive({ id: 2, error: { code: 'ERR_NO_MODEL', message: 'no model yet' } }), 'an error reply taken')
  t.ok(requests.receive({ id: 1, result: { history: [] } }), 'a result taken, out of order')
  t.same(await one, { history: [] }, 'the result')
  t.same(progress, [{ type: 'batch' }], 'the progress')
  const err = await two.catch((e) => e)
  t.ok(err instanceof RequestError, 'an error reply rejects')
  t.equal(err.code, 'ERR_NO_MODEL', 'with its code')
  const three = requests.request('predict', {})
  requests.failAll('ERR_WORKER_EXIT', 'gone')
  t.same(await settle(three), { error: { code: 'ERR_WORKER_EXIT', message: 'gone' } }, 'failAll rejects what is in flight')
  t.equal(requests.size, 0, 'nothing left in flight')
  const refused = new Requests(() => { throw new Error('closed') })
  t.same(await settle(refused.request('predict')), { error: { code: 'ERR_UNKNOWN', message: 'closed' } }, 'a failed send rejects')
  t.equal(refused.size, 0, 'a request that could not be sent is not left pending')
})

// A child process with an IPC channel that typed arrays cross (as Electron's structured clone);
// `next(match)` settles with the first message, past or future, that `match` accepts; `stdout()`
// is what it (and its own children) printed so far.
function child (t, script, args, env) {
  const childEnv = { ...process.env, ...env }
  delete childEnv.NODE_OPTIONS // tap's hooks stay out of it
  const proc = fork(script, args, { env: childEnv, execArgv: [], serialization: 'advanced', stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
  let stdout = ''
  proc.stdout.setEncoding('utf8')
  proc.stdout.on('data', (chunk) => { stdout += chunk })
  const messages = []
  const waiting = new Set()
  proc.on('message', (m) => {
    messages.push(m)
    for (const w of waiting) {
      if (w.match(m)) {
        waiting.delete(w)
        w.resolve(m)
      }
    }
  })
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })))
  exited.then(({ code, signal }) => {
    for (const w of waiting) w.reject(new Error(`${script} exited (${code ?? signal}) before the message came`))
  })
  t.teardown(() => proc.kill('SIGKILL'))
  const next = (match, timeoutMs = 60_000) => {
    const seen = messages.find(match)
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const w = { match, resolve, reject }
      waiting.add(w)
      setTimeout(() => {
        if (waiting.delete(w)) reject(new Error(`no such message from ${script} within ${timeoutMs} ms`))
      }, timeoutMs).unref()
    })
  }
  return { proc, messages, next, exited, stdout: () => stdout }
}

function modelWorker (t, nodePath) {
  return child(t, join(fakeElectron, 'utility-host.js'), [join(example, 'model-worker.js')], { NODE_PATH: nodePath })
}

t.test('examples/electron/model-worker.js as a utility process', async (t) => {
  const nodePath = modulesDir(t)
  const outDir = join(scratch(t, 'out'), 'model')
  const worker = modelWorker(t, nodePath)
  const ask = (message) => {
    worker.proc.send(message)
    return worker.next((m) => m.id === message.id && m.type !== 'progress')
  }

  const ready = await worker.next((m) => m.type === 'ready')
  t.equal(ready.libtorch, version().libtorch, `ready: LibTorch loaded at start (${Math.round(ready.loadMs)} ms)`)
  t.ok(ready.loadMs > 0, 'the load was timed')

  t.equal((await ask({ id: 1, type: 'predict', outDir, pick: [0, 1] })).error?.code, 'ERR_NO_MODEL', 'predict before any model')
  t.equal((await ask({ id: 2, type: 'train', options: { epochs: 0, outDir } })).error?.code, 'ERR_INVALID_ARG', 'epochs: 0')
  t.equal((await ask({ id: 3, type: 'train', options: { every: 0 } })).error?.code, 'ERR_INVALID_ARG', 'every: 0')
  t.equal((await ask({ id: 4, type: 'shutdown' })).error?.code, 'ERR_UNKNOWN_MESSAGE', 'an unknown message')

  // One epoch on every 20th digit (401 training, 100 test images): seconds, not a minute.
  const training = ask({ id: 5, type: 'train', options: { epochs: 1, every: 20, seed: 1, outDir } })
  const busy = await ask({ id: 6, type: 'train', options: { epochs: 1, every: 20, outDir } })
  t.equal(busy.error?.code, 'ERR_BUSY', 'a second training while one runs')
  const trained = await training
  t.notOk(trained.error, `trained: ${trained.error?.message ?? 'no error'}`)
  t.equal(trained.result.history.length, 1, 'a history of one epoch')
  const accuracy = trained.result.history[0].testAccuracy
  t.ok(accuracy > 0 && accuracy <= 1, `test accuracy ${accuracy}`)
  t.equal(trained.result.modelPath, join(outDir, 'model.safetensors'), 'the model file is named')
  t.ok(existsSync(trained.result.modelPath), 'model.safetensors written')
  const progress = worker.messages.filter((m) => m.type === 'progress' && m.id === 5).map((m) => m.event.type)
  t.ok(progress.includes('batch') && progress.includes('epoch') && progress.includes('file'), `progress events: ${[...new Set(progress)]}`)

  const picked = await ask({ id: 7, type: 'predict', outDir, pick: [0, 5] })
  t.notOk(picked.error, `picked: ${picked.error?.message ?? 'no error'}`)
  const { pSame, labels, images } = picked.result
  t.ok(pSame >= 0 && pSame <= 1, `P(same) ${pSame} for a ${labels[0]} and a ${labels[1]}`)
  const { test } = await datasets.embedded()
  t.same(labels, [test.classes[test.labels[0]], test.classes[test.labels[5]]], 'the labels of the picked digits')
  t.ok(images[0] instanceof Uint8Array && images[0].length === 784, 'the picked images come back as pixels')

  const a = test.images.slice(0, 784)
  const raw = await ask({ id: 8, type: 'predict', outDir, a, b: Array.from(test.images.subarray(5 * 784, 6 * 784)) })
  t.notOk(raw.error, `raw pixels: ${raw.error?.message ?? 'no error'}`)
  t.equal(raw.result.pSame, pSame, 'raw pixels (a Uint8Array, an array) predict the same as the picked images')
  t.equal((await ask({ id: 9, type: 'predict', outDir, a: '/etc/hostname', b: a })).error?.code, 'ERR_INVALID_ARG', 'a file path is refused')
  t.equal((await ask({ id: 10, type: 'predict', outDir, pick: [0, 5000] })).error?.code, 'ERR_INVALID_ARG', 'a pick out of range')

  // A fresh process (the app started again) predicts with the saved model.
  const again = modelWorker(t, nodePath)
  again.proc.send({ id: 1, type: 'predict', outDir, pick: [0, 5] })
  const loaded = await again.next((m) => m.id === 1)
  t.notOk(loaded.error, `a fresh process: ${loaded.error?.message ?? 'no error'}`)
  t.ok(Math.abs(loaded.result.pSame - pSame) < 1e-6, 'the model file predicts as the trained model')
})

t.test('examples/electron/main.js with a stand-in electron module', async (t) => {
  const userData = scratch(t, 'user-data')
  const app = child(t, join(example, 'main.js'), [], {
    NODE_PATH: [fakeElectron, modulesDir(t)].join(delimiter),
    FAKE_ELECTRON_USER_DATA: userData
  })
  let seq = 0
  const invoke = async (channel, arg) => {
    const n = ++seq
    app.proc.send({ seq: n, invoke: channel, arg })
    const reply = await app.next((m) => m.seq === n)
    if (reply.error !== undefined) throw new Error(reply.error)
    return reply.value
  }

  const forked = await app.next((m) => m.type === 'fork')
  t.equal(forked.modulePath, join(example, 'model-worker.js'), 'the model runs in a utility process')
  const win = await app.next((m) => m.type === 'window')
  t.equal(win.file, join(example, 'index.html'), 'the window loads index.html')
  t.equal(win.options.webPreferences.preload, join(example, 'preload.js'), 'with preload.js')
  t.ok(existsSync(win.options.webPreferences.preload), 'the preload exists')
  t.notOk(win.options.webPreferences.nodeIntegration, 'no Node in the renderer')
  t.not(win.options.webPreferences.sandbox, false, 'the renderer stays sandboxed')
  t.not(win.options.webPreferences.contextIsolation, false, 'context isolation stays on')

  const early = await invoke('predict', { pick: [0, 1] })
  t.equal(early.error?.code, 'ERR_NO_MODEL', 'predict before training: an error the renderer can show')

  // The renderer may not choose where the model is written.
  const trained = await invoke('train', { epochs: 1, every: 40, outDir: join(userData, 'elsewhere') })
  t.notOk(trained.error, `trained: ${trained.error?.message ?? 'no error'}`)
  t.equal(trained.result.history.length, 1, 'a history of one epoch')
  t.equal(trained.result.modelPath, join(userData, 'siamese-model', 'model.safetensors'), 'written under userData')
  t.notOk(existsSync(join(userData, 'elsewhere')), 'not where the renderer asked')
  const sent = app.messages.filter((m) => m.type === 'send')
  t.ok(sent.length > 0 && sent.every((m) => m.channel === 'progress'), `${sent.length} progress events sent to the window`)
  t.ok(sent.some((m) => m.args[0].type === 'epoch'), 'the epoch event among them')

  const predicted = await invoke('predict', { pick: [2, 3] })
  t.notOk(predicted.error, `predicted: ${predicted.error?.message ?? 'no error'}`)
  t.ok(predicted.result.pSame >= 0 && predicted.result.pSame <= 1, `P(same) ${predicted.result.pSame}`)
  t.ok(predicted.result.images[1] instanceof Uint8Array, 'pixels for the window to draw')

  app.proc.send({ closeAllWindows: true })
  t.same(await app.exited, { code: 0, signal: null }, 'closing the window quits, after the utility process ended')
  t.match(app.stdout(), /siamese-torch: LibTorch [\d.]+ loaded in \d+ ms/, "main.js logged the utility process's load time")
})
