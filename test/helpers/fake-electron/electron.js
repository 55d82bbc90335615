'use strict'
// A stand-in for the `electron` module, with just what examples/electron/main.js uses, so that
// test/electron.test.mjs can run main.js under plain Node (Electron itself cannot be downloaded
// where the tests run). Put this folder on NODE_PATH and fork main.js with an IPC channel
// (serialization: 'advanced'); the test drives it with messages:
//   { seq, invoke: channel, arg }   calls the ipcMain.handle handler of `channel` as a renderer's
//                                   ipcRenderer.invoke(channel, arg) would; answered with
//                                   { seq, value } or { seq, error }
//   { closeAllWindows: true }       closes every window, as a user would
// and it reports what main.js does: { type: 'window', options, file } for each window loaded,
// { type: 'send', channel, args } for each webContents.send, { type: 'fork', modulePath } for
// each utility process. utilityProcess.fork runs the module in a child process (utility-host.js)
// where process.parentPort is a stand-in too. app.quit() ends this process with exit code 0
// once the utility processes are gone.

const { EventEmitter } = require('node:events')
const { fork } = require('node:child_process')
const path = require('node:path')
const os = require('node:os')

const report = (message) => process.send?.(message)

// app
const app = new EventEmitter()
const ready = new Promise((resolve) => setImmediate(resolve))
app.whenReady = () => ready
app.isReady = () => true
app.getPath = (name) => {
  if (name !== 'userData') throw new Error(`fake electron: app.getPath(${name}) is not implemented`)
  return process.env.FAKE_ELECTRON_USER_DATA ?? path.join(os.tmpdir(), 'fake-electron-user-data')
}
let quitting = false
app.quit = () => {
  if (quitting) return
  quitting = true
  app.emit('before-quit')
  app.emit('will-quit')
  const alive = utilityProcesses.filter((u) => u.pid !== undefined)
  if (alive.length === 0) process.exit(0)
  let left = alive.length
  for (const u of alive) u.once('exit', () => { if (--left === 0) process.exit(0) })
  // A utility process that main.js did not kill is ended by Electron when the app quits.
  setTimeout(() => { for (const u of alive) u.kill() }, 1000).unref()
}

// BrowserWindow and its webContents
const windows = new Set()
class BrowserWindow extends EventEmitter {
  constructor (options = {}) {
    super()
    this.options = options
    this.destroyed = false
    const win = this
    this.webContents = {
      send: (channel, ...args) => report({ type: 'send', channel, args }),
      isDestroyed: () => win.destroyed
    }
    windows.add(this)
  }

  static getAllWindows () {
    return [...windows]
  }

  loadFile (file) {
    report({ type: 'window', options: JSON.parse(JSON.stringify(this.options)), file })
    return Promise.resolve()
  }

  isDestroyed () {
    return this.destroyed
  }

  close () {
    if (this.destroyed) return
    this.destroyed = true
    windows.delete(this)
    this.emit('closed')
    if (windows.size === 0) app.emit('window-all-closed')
  }
}

// ipcMain
const handlers = new Map()
const ipcMain = {
  handle (channel, handler) {
    if (handlers.has(channel)) throw new Error(`Attempted to register a second handler for '${channel}'`)
    handlers.set(channel, handler)
  },
  removeHandler (channel) {
    handlers.delete(channel)
  }
}

process.on('message', async (message) => {
  if (message?.closeAllWindows) {
    for (const win of [...windows]) win.close()
    return
  }
  if (message?.invoke === undefined) return
  const { seq, invoke: channel, arg } = message
  const handler = handlers.get(channel)
  if (handler === undefined) {
    report({ seq, error: `No handler registered for '${channel}'` })
    return
  }
  // The renderer's window: the first open one, as the example has only one.
  const sender = [...windows][0]?.webContents ?? { send () {}, isDestroyed: () => true }
  try {
    report({ seq, value: await handler({ sender }, arg) })
  } catch (err) {
    report({ seq, error: String(err?.message ?? err) })
  }
})

// utilityProcess
const utilityProcesses = []
class UtilityProcess extends EventEmitter {
  constructor (modulePath, args, options) {
    super()
    report({ type: 'fork', modulePath })
    this.child = fork(path.join(__dirname, 'utility-host.js'), [modulePath, ...args], {
      env: options.env ?? process.env,
      cwd: options.cwd,
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc']
    })
    this.pid = undefined
    this.child.on('spawn', () => { this.pid = this.child.pid; this.emit('spawn') })
    this.child.on('message', (message) => this.emit('message', message))
    this.child.on('exit', (code, signal) => {
      this.pid = undefined
      this.emit('exit', code ?? (signal ? 1 : 0))
    })
  }

  postMessage (message) {
    this.child.send(message)
  }

  kill () {
    return this.child.kill()
  }
}

const utilityProcess = {
  fork (modulePath, args = [], options = {}) {
    if (!app.isReady()) throw new Error('utilityProcess cannot be created before app is ready')
    const u = new UtilityProcess(modulePath, args, options)
    utilityProcesses.push(u)
    return u
  }
}

// Preloads and renderers get these from the real module; main.js does not use them.
const contextBridge = { exposeInMainWorld () { throw new Error('fake electron: contextBridge is renderer-only') } }
const ipcRenderer = { invoke () { throw new Error('fake electron: ipcRenderer is renderer-only') } }

module.exports = { app, BrowserWindow, ipcMain, utilityProcess, contextBridge, ipcRenderer }
