'use strict'
// Request and reply over a message channel, matched by id: what main.js needs to turn a message
// to the model's utility process into a promise. No Electron here, so the tests run it in Node.

/** An error the model process replied with: `code` is siamese-torch's (or model-worker.js's). */
class RequestError extends Error {
  constructor (code, message) {
    super(message)
    this.name = 'RequestError'
    this.code = code
  }
}

class Requests {
  /** `send(message)` delivers one message to the other side (utilityProcess's postMessage). */
  constructor (send) {
    this.send = send
    this.nextId = 1
    this.pending = new Map()
  }

  /** Requests in flight. */
  get size () {
    return this.pending.size
  }

  /**
   * Sends `{ ...fields, id, type }` and settles with the reply's `result`, or rejects with a
   * RequestError for its `error`. `onProgress(event)` sees the request's progress messages.
   */
  request (type, fields = {}, onProgress = undefined) {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress })
      try {
        this.send({ ...fields, id, type })
      } catch (err) {
        this.pending.delete(id)
        reject(err)
      }
    })
  }

  /** Handles a message from the other side; false when it answers no request in flight. */
  receive (message) {
    const entry = this.pending.get(message?.id)
    if (entry === undefined) return false
    if (message.type === 'progress') {
      entry.onProgress?.(message.event)
      return true
    }
    this.pending.delete(message.id)
    if (message.error !== undefined) entry.reject(new RequestError(message.error.code, message.error.message))
    else entry.resolve(message.result)
    return true
  }

  /** Rejects every request in flight (the other side has gone away). */
  failAll (code, message) {
    const entries = [...this.pending.values()]
    this.pending.clear()
    for (const entry of entries) entry.reject(new RequestError(code, message))
  }
}

/** A promise's outcome as plain data, `{ result }` or `{ error: { code, message } }`, the way ipcMain.handle returns it. */
async function settle (promise) {
  try {
    return { result: await promise }
  } catch (err) {
    return { error: { code: typeof err?.code === 'string' ? err.code : 'ERR_UNKNOWN', message: String(err?.message ?? err) } }
  }
}

module.exports = { Requests, RequestError, settle }
