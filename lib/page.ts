// The server's web page and live training (docs/serve.md, "The page"): the page's static files
// (lib/page/, copied to dist/page/ by scripts/build-page.js) at `/` and `/page/<file>`, what the
// page needs to know (`/page/info`), and a training run's progress as server-sent events
// (`/events`) with its latest sheet of test pairs (`/training/sheet.png`). `TrainingFeed` is what
// a training run feeds (`siamese-torch train --serve`); `pageRoutes` is what the server asks first
// for every request (lib/serve.ts). The static files are open to all; everything else needs the
// server's token, which the page sends from a field of its own.
import { readFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'

import type { ErrorCode } from './errors.js'
import type { SiameseModel } from './model.js'
import { epochMetrics, type BatchEvent, type EpochMetrics, type ProgressEvent } from './progress.js'
import { integerIn } from './validate.js'

/**
 * What a `TrainingFeed` holds at a moment: what a page that connects now is sent first.
 *
 * @example
 * ```ts
 * const { history, done } = feed.state
 * console.log(`${history.length} epochs${done ? ', done' : ''}`)
 * ```
 */
export interface TrainingState {
  /** The metrics of every epoch done, in order. */
  history: EpochMetrics[]
  /** The latest batch event; null before the first and after the run ends. */
  batch: BatchEvent | null
  /** The epoch of the latest sheet of test pairs; null before the first. */
  sheetEpoch: number | null
  /** True once the run has ended (`finish`). */
  done: boolean
  /** Why the run failed, when it did; null otherwise. */
  error: string | null
}

/**
 * What a `TrainingFeed` tells its subscribers, as it happens.
 *
 * @example
 * ```ts
 * const stop = feed.subscribe((e) => { if (e.type === 'epoch') console.log(e.metrics.testAccuracy) })
 * stop()
 * ```
 */
export type TrainingFeedEvent =
  | { type: 'batch', batch: BatchEvent }
  | { type: 'epoch', metrics: EpochMetrics }
  | { type: 'sheet', epoch: number }
  | { type: 'done', error: string | null }

/**
 * A training run's progress, for the server's page: the history of epoch metrics, the latest
 * batch event and the latest sheet of test pairs (a PNG). It is fed training's events (`push`,
 * as or inside `onProgress`), sheets (`publishSheet`) and the end (`finish`); `serve({ training })`
 * streams it to pages as server-sent events at `GET /events` (see docs/serve.md).
 *
 * @example
 * ```ts
 * import { serve, train, TrainingFeed } from 'siamese-torch'
 * const feed = new TrainingFeed()
 * const server = await serve({ models: [], training: feed, port: 8080 })   // open http://127.0.0.1:8080
 * const { model } = await train({ epochs: 5, onProgress: feed.push })
 * await server.addModel('digits', model)   // the page's Compare panel can use it now
 * feed.finish()
 * ```
 */
export class TrainingFeed {
  readonly #history: EpochMetrics[] = []
  #batch: BatchEvent | null = null
  #sheet: { png: Buffer, epoch: number } | null = null
  #done = false
  #error: string | null = null
  readonly #listeners = new Set<(event: TrainingFeedEvent) => void>()

  /**
   * Takes one training event: a batch event becomes the latest, an epoch's metrics join the
   * history; file events are ignored. Bound, so that it can be passed as `onProgress` itself.
   */
  readonly push = (event: ProgressEvent): void => {
    if (event.type === 'batch') {
      this.#batch = { ...event }
      this.#emit({ type: 'batch', batch: this.#batch })
    } else if (event.type === 'epoch') {
      const metrics = epochMetrics(event)
      this.#history.push(metrics)
      this.#emit({ type: 'epoch', metrics })
    }
  }

  /** Publishes a sheet of test pairs (PNG bytes) drawn after epoch `epoch`; it replaces the previous one. */
  publishSheet (png: Uint8Array, epoch: number): void {
    integerIn(epoch, 'epoch', 0)
    this.#sheet = { png: Buffer.from(png), epoch }
    this.#emit({ type: 'sheet', epoch })
  }

  /** Says that the run has ended, with the reason when it failed. */
  finish (error?: string): void {
    this.#done = true
    this.#error = error ?? null
    this.#batch = null
    this.#emit({ type: 'done', error: this.#error })
  }

  /** A copy of what it holds now. */
  get state (): TrainingState {
    return { history: [...this.#history], batch: this.#batch, sheetEpoch: this.#sheet?.epoch ?? null, done: this.#done, error: this.#error }
  }

  /** The latest sheet of test pairs, or null before the first. */
  get sheet (): { png: Buffer, epoch: number } | null {
    return this.#sheet
  }

  /** Subscribers now: each open `/events` stream is one. */
  get watchers (): number {
    return this.#listeners.size
  }

  /**
   * Calls `listener` with every event from now on; returns the function that stops it. A
   * listener that throws is dropped, and training goes on.
   */
  subscribe (listener: (event: TrainingFeedEvent) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  #emit (event: TrainingFeedEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event)
      } catch {
        this.#listeners.delete(listener)
      }
    }
  }
}

// ---- the routes ----

/** The page's files: the only names `/page/<file>` serves (so no path can lead elsewhere). */
const PAGE_FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8'
}

/** Where the page's files are: dist/page/ next to dist/page.js (lib/page/ next to lib/page.ts in a checkout). */
const PAGE_DIR = join(__dirname, 'page')

/** Sent with every answer of the page's: no script, style, frame or form from anywhere but this server. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': "default-src 'self'; img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer'
}

/** Batch events sent to one stream at most this often (5 a second); the latest is sent at the end of the wait. */
const BATCH_INTERVAL_MS = 200
/** A comment line keeps proxies and clients from taking a quiet stream for a dead one. */
const HEARTBEAT_MS = 15_000
/** A stream whose client reads nothing is ended once this much waits unsent. */
const STREAM_BACKLOG_BYTES = 1 << 20

/** What the page's routes need from the server. */
export interface PageContext {
  /** The models served (it grows when a model is added). */
  models: ReadonlyMap<string, SiameseModel>
  /** The training run being watched, if any. */
  training: TrainingFeed | undefined
  /** The server's token: needed by everything but the page's own files. */
  token: string | undefined
  /** Whether the server has gallery endpoints. */
  galleries: () => boolean
}

/** How the page's routes answered a request: the endpoint's name (for /metrics) and the status. */
export interface PageAnswer {
  endpoint: string
  status: number
}

/** The page's routes of a server. */
export interface PageRoutes {
  /**
   * Answers the request when its path is one of the page's (`/`, `/page/...`, `/events`,
   * `/training/...`) and resolves with how; resolves with undefined for any other path,
   * leaving the request to the server's other routes. An event stream resolves once started.
   */
  handle: (req: IncomingMessage, res: ServerResponse, path: string) => Promise<PageAnswer | undefined>
  /** Ends every event stream (the server is closing), so that no connection waits on them. */
  close: () => void
}

/** A failed request of the page's: a status, the package's code and a message. */
class PageError extends Error {
  constructor (readonly status: number, readonly code: ErrorCode, message: string, readonly headers: Record<string, string> = {}) {
    super(message)
  }
}

const notFound = (path: string): PageError => new PageError(404, 'ERR_NOT_FOUND', `no endpoint ${path}`)

function send (res: ServerResponse, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-cache',
    ...SECURITY_HEADERS,
    ...headers
  })
  res.end(body)
}

const sendJson = (res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void =>
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value), headers)

/** One event of a stream, in the text/event-stream format (one `data:` line: JSON has no newline). */
const sseEvent = (name: string, data: unknown): string => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`

const sheetUrl = (epoch: number | null): string | null => (epoch === null ? null : `/training/sheet.png?epoch=${epoch}`)

/**
 * The page's routes for a server (lib/serve.ts asks them first): the static files, `/page/info`,
 * `/events` and `/training/sheet.png`. Every failure is a JSON error with the package's code.
 */
export function pageRoutes (context: PageContext): PageRoutes {
  const streams = new Set<() => void>() // each open stream's ending

  const authorized = (req: IncomingMessage): boolean => context.token === undefined || req.headers.authorization === `Bearer ${context.token}`

  const staticFile = async (res: ServerResponse, name: string): Promise<void> => {
    const type = PAGE_FILES[name]
    if (type === undefined) throw new PageError(404, 'ERR_NOT_FOUND', `no page file ${name} (the page has ${Object.keys(PAGE_FILES).join(', ')})`)
    let body: Buffer
    try {
      body = await readFile(join(PAGE_DIR, name))
    } catch (err) {
      throw new PageError(500, 'ERR_BAD_FILE', `the page's file ${name} cannot be read from ${PAGE_DIR} (${err instanceof Error ? err.message : String(err)}); ` +
        'a checkout builds it with npm run build:ts')
    }
    send(res, 200, type, body)
  }

  const info = (): unknown => ({
    models: [...context.models].map(([name, model]) => {
      const { width, height, channels, loss, threshold } = model.config
      return { name, width, height, channels, loss, threshold }
    }),
    training: context.training !== undefined,
    galleries: context.galleries()
  })

  const events = (req: IncomingMessage, res: ServerResponse, feed: TrainingFeed): void => {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      'X-Accel-Buffering': 'no',
      ...SECURITY_HEADERS
    })
    req.socket.setNoDelay(true)
    let lastBatchAt = 0
    let pendingBatch: BatchEvent | undefined
    let batchTimer: NodeJS.Timeout | undefined
    const write = (text: string): void => {
      if (res.writableEnded || res.destroyed) return
      res.write(text)
      if (res.writableLength > STREAM_BACKLOG_BYTES) end()
    }
    const sendBatch = (): void => {
      batchTimer = undefined
      if (pendingBatch === undefined) return
      lastBatchAt = Date.now()
      write(sseEvent('batch', pendingBatch))
      pendingBatch = undefined
    }
    const unsubscribe = feed.subscribe((event) => {
      switch (event.type) {
        case 'batch': {
          pendingBatch = event.batch
          const wait = lastBatchAt + BATCH_INTERVAL_MS - Date.now()
          if (wait <= 0) sendBatch()
          else batchTimer ??= setTimeout(sendBatch, wait)
          break
        }
        case 'epoch':
          sendBatch() // the epoch's last batch first
          write(sseEvent('epoch', event.metrics))
          break
        case 'sheet':
          write(sseEvent('sheet', { url: sheetUrl(event.epoch), epoch: event.epoch }))
          break
        case 'done':
          pendingBatch = undefined
          write(sseEvent('done', { error: event.error, epochs: feed.state.history.length }))
          break
      }
    })
    const heartbeat = setInterval(() => write(': heartbeat\n\n'), HEARTBEAT_MS)
    const cleanUp = (): void => {
      unsubscribe()
      clearInterval(heartbeat)
      clearTimeout(batchTimer)
      streams.delete(end)
    }
    // Ends the stream, and its connection once the last byte is out: a closing server waits for none.
    function end (): void {
      cleanUp()
      if (!res.writableEnded) res.end(() => res.socket?.end())
    }
    streams.add(end)
    res.on('close', cleanUp)
    const { history, batch, sheetEpoch, done, error } = feed.state
    write(`retry: 2000\n\n${sseEvent('state', { history, batch, sheet: sheetUrl(sheetEpoch), done, error })}`)
  }

  const answer = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    if (path === '/' || path === '/index.html') return staticFile(res, 'index.html')
    const file = /^\/page\/([^/]*)$/.exec(path)?.[1]
    if (file !== undefined && file !== 'info') return staticFile(res, file)
    // The page's data: behind the token, as the rest of the server.
    if (!authorized(req)) throw new PageError(401, 'ERR_UNAUTHORIZED', 'this server needs Authorization: Bearer <token>', { 'WWW-Authenticate': 'Bearer' })
    if (path === '/page/info') return sendJson(res, 200, info())
    const feed = context.training
    if (path === '/events') {
      if (feed === undefined) throw new PageError(404, 'ERR_NOT_FOUND', 'this server is not watching a training run (siamese-torch train --serve)')
      return events(req, res, feed)
    }
    if (path === '/training/sheet.png') {
      const sheet = feed?.sheet
      if (!sheet) throw new PageError(404, 'ERR_NOT_FOUND', feed === undefined ? 'this server is not watching a training run' : 'no sheet of test pairs yet: the first comes after the first epoch')
      return send(res, 200, 'image/png', sheet.png, { 'X-Epoch': String(sheet.epoch) })
    }
    throw notFound(path)
  }

  return {
    handle: async (req, res, path) => {
      const endpoint = path === '/page/info' ? 'page_info' : path === '/events' ? 'events' : path.startsWith('/training/') ? 'training' : 'page'
      if (endpoint === 'page' && path !== '/' && path !== '/index.html' && !path.startsWith('/page/')) return undefined
      try {
        if (req.method !== 'GET') throw new PageError(405, 'ERR_INVALID_ARG', `${path} takes GET, not ${req.method ?? ''}`, { Allow: 'GET' })
        await answer(req, res, path)
        return { endpoint, status: 200 }
      } catch (err) {
        const e = err instanceof PageError ? err : new PageError(500, 'ERR_NATIVE', err instanceof Error ? err.message : String(err))
        if (!res.headersSent) sendJson(res, e.status, { error: { code: e.code, message: e.message } }, e.headers)
        return { endpoint, status: e.status }
      }
    },
    close: () => {
      for (const end of [...streams]) end()
    }
  }
}
