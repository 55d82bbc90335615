'use strict'
// The renderer's only way to the model: two requests and a progress feed, through the main
// process (main.js), which forwards them to the model's utility process. The page gets plain
// functions (contextBridge), never ipcRenderer itself.

const { contextBridge, ipcRenderer } = require('electron')

// The main process answers { result } or { error: { code, message } }; make that a promise.
async function call (channel, argument) {
  const reply = await ipcRenderer.invoke(channel, argument)
  if (reply.error) throw new Error(`${reply.error.code}: ${reply.error.message}`)
  return reply.result
}

contextBridge.exposeInMainWorld('siamese', {
  /** Trains a new model: { epochs, every, seed }; resolves with { history, modelPath }. */
  train: (options) => call('train', options),
  /** P(same): { pick: [i, j] } (two embedded test digits) or { a, b } (Uint8Array(784) each). */
  predict: (request) => call('predict', request),
  /** Calls `listener(event)` for each training progress event; returns a function that stops it. */
  onProgress: (listener) => {
    const forward = (_event, progress) => listener(progress)
    ipcRenderer.on('progress', forward)
    return () => ipcRenderer.removeListener('progress', forward)
  }
})
