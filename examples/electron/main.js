'use strict'
// The Electron main process of the example. It never loads siamese-torch itself: the model lives
// in a utility process (model-worker.js), so that loading LibTorch (a blocking dlopen) and a
// long training run never hold up this process, which draws every window. The renderer reaches
// the model only through the two channels below (see preload.js).

const path = require('node:path')
const { app, BrowserWindow, ipcMain, utilityProcess } = require('electron')
const { Requests, settle } = require('./requests')

let worker = null
const requests = new Requests((message) => modelProcess().postMessage(message))

// The utility process, forked on first use and again after it has gone (a crash fails the
// requests in flight, not the app).
function modelProcess () {
  if (worker !== null) return worker
  const child = utilityProcess.fork(path.join(__dirname, 'model-worker.js'), [], {
    serviceName: 'siamese-torch model',
    stdio: 'inherit'
  })
  child.on('message', (message) => {
    if (message?.type === 'ready') {
      if (message.error) console.error(`siamese-torch did not load: ${message.error.code}: ${message.error.message}`)
      else console.log(`siamese-torch: LibTorch ${message.libtorch} loaded in ${Math.round(message.loadMs)} ms`)
      return
    }
    requests.receive(message)
  })
  child.on('exit', (code) => {
    if (worker === child) worker = null
    requests.failAll('ERR_WORKER_EXIT', `the model process exited (code ${code})`)
  })
  worker = child
  return child
}

// Models are written where the app keeps its data, never where a renderer says.
const modelDir = () => path.join(app.getPath('userData'), 'siamese-model')

// Only these options come from the renderer; everything else is this process's choice.
function trainOptions (options) {
  const { epochs = 1, every, seed } = options ?? {}
  return { epochs, every, seed, outDir: modelDir() }
}

function createWindow () {
  const win = new BrowserWindow({
    width: 560,
    height: 440,
    webPreferences: { preload: path.join(__dirname, 'preload.js') } // contextIsolation and sandbox: on by default
  })
  win.loadFile(path.join(__dirname, 'index.html'))
  return win
}

app.whenReady().then(() => {
  // Start the model process first: it loads LibTorch while the window is being created.
  modelProcess()

  ipcMain.handle('train', (event, options) => settle(requests.request('train', { options: trainOptions(options) }, (progress) => {
    if (!event.sender.isDestroyed()) event.sender.send('progress', progress)
  })))

  ipcMain.handle('predict', (event, request) => {
    const { pick, a, b } = request ?? {}
    return settle(requests.request('predict', { outDir: modelDir(), pick, a, b }))
  })

  createWindow()
})

app.on('window-all-closed', () => app.quit())

app.on('will-quit', () => {
  worker?.kill()
})
