'use strict'
// Runs a module the way Electron runs a utility process's entry point, for the fake `electron`
// module (electron.js) and for test/electron.test.mjs: process.parentPort is an EventEmitter
// whose 'message' events carry { data, ports } and whose postMessage(message) reaches the
// parent; messages that arrive before a 'message' handler is registered wait for it, as
// Electron's do. The parent is a Node IPC channel (fork with serialization: 'advanced', so
// typed arrays cross as they do in Electron). Usage: utility-host.js <module> [args...]

const { EventEmitter } = require('node:events')
const path = require('node:path')

const parentPort = new EventEmitter()
parentPort.postMessage = (message) => process.send(message)

const queued = []
process.on('message', (data) => {
  if (parentPort.listenerCount('message') === 0) queued.push(data)
  else parentPort.emit('message', { data, ports: [] })
})
parentPort.on('newListener', (name) => {
  if (name !== 'message') return
  setImmediate(() => { while (queued.length > 0) parentPort.emit('message', { data: queued.shift(), ports: [] }) })
})
// Electron ends a utility process when its parent goes.
process.on('disconnect', () => process.exit(0))

process.parentPort = parentPort
const [modulePath, ...args] = process.argv.slice(2)
const entry = path.resolve(modulePath)
process.argv = [process.argv[0], entry, ...args]
require(entry)
