// `serve()` and `siamese-torch serve`: models behind HTTP, on Node's own http module (no framework:
// the surface is small, and every limit is ours to set; docs/serve.md says why). Endpoints: the
// Open Inference Protocol (KServe v2) subset model servers share, /compare and /embed in plain
// JSON, and /metrics in Prometheus text. Concurrent requests share forward passes through the
// models' own batching (native/addon/batcher.h). Every failure is a JSON error with the
// package's code; nothing a client sends can crash the server.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdir, readdir } from 'node:fs/promises'
import { basename, extname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import busboy from 'busboy'
import sharp from 'sharp'
import { SiameseTorchError, type ErrorCode } from './errors.js'
import type { RawImage } from './inputs.js'
import { galleryFingerprint, gallerySummary, openGallery, type Gallery, type GalleryMatch } from './gallery.js'
import type { NativeBatchStats } from './binding.js'
import { batchStats, loadModel, SiameseModel } from './model.js'
import { pageRoutes, TrainingFeed } from './page.js'
import { integerIn, invalidArg, isPlainObject, nonEmptyString } from './validate.js'
import { packageVersion } from './version.js'
import { pngSize } from './png.js'

/** What a request may carry; each limit answers with a JSON error when crossed. */
export interface ServeLimits {
  /** Request body, bytes (413 `ERR_TOO_LARGE`). Default 16 MiB. */
  bodyBytes: number
  /** Pixels of one encoded image, read from its header before decoding: decompression bombs (413 `ERR_TOO_LARGE`). Default 25 million. */
  imagePixels: number
  /** Images in one request (413 `ERR_TOO_LARGE`). Default 256. */
  images: number
  /** Time to receive a whole request (408 `ERR_TIMEOUT`). Default 30000 ms. */
  requestTimeoutMs: number
  /** Requests in flight; one more gets 503 `ERR_BUSY` with `Retry-After`. Default 1024. */
  queue: number
}

/** Options of `serve`. */
export interface ServeOptions {
  /**
   * The models: file paths or loaded models, named by their file's name (less `.safetensors`) or
   * by the keys of an object. May be empty (`[]`) when `training` is given: the trained model
   * joins later, through `addModel`.
   */
  models: ReadonlyArray<string | SiameseModel> | Readonly<Record<string, string | SiameseModel>>
  /** Default 8080; 0 picks a free port. */
  port?: number
  /** Default `'127.0.0.1'` (this machine only); `'0.0.0.0'` or an address to serve others, explicitly. */
  host?: string
  /** When set, every request but the health checks needs `Authorization: Bearer <token>` (401 `ERR_UNAUTHORIZED`). */
  token?: string
  limits?: Partial<ServeLimits>
  /**
   * LibTorch threads of each model the server loads from a file. Default: the machine's default
   * (`version().threads`), as for any model. Models passed in loaded keep their own.
   */
  threads?: number
  /**
   * A folder of galleries, one SQLite file each (`<name>.sqlite`), made when missing: enables
   * `/galleries/{name}/items`, `/classify` and `/identify` (see `openGallery`). A gallery is served
   * with the model whose fingerprint it carries; one made with none of the served models answers
   * 409 `ERR_MODEL_MISMATCH`.
   */
  galleries?: string
  /**
   * A training run to show live on the page at `/`: its curves, progress and sheet of test pairs,
   * streamed as server-sent events at `GET /events` (docs/serve.md, "The page"). This is what
   * `siamese-torch train --serve` does.
   */
  training?: TrainingFeed
}

/** A running server. */
export interface ServeHandle {
  /** e.g. `http://127.0.0.1:8080` */
  url: string
  port: number
  host: string
  /** The models served, by name. */
  models: ReadonlyMap<string, SiameseModel>
  /**
   * Serves one more model under `name` (letters, digits, `_`, `.`, `-`; not one served already):
   * a file path, which the server loads and frees on `close()`, or a loaded model, which stays the
   * caller's (free it after `close()`). E.g. the model a watched training run ends with:
   * `await server.addModel('digits', model)`.
   */
  addModel: (name: string, model: string | SiameseModel) => Promise<void>
  /** Stops accepting requests, ends the event streams, finishes the requests in flight, then frees the models it loaded. */
  close: () => Promise<void>
}

const DEFAULT_LIMITS: ServeLimits = { bodyBytes: 16 << 20, imagePixels: 25_000_000, images: 256, requestTimeoutMs: 30_000, queue: 1024 }

/** A failed request: its HTTP status and the package's code. */
class HttpError extends SiameseTorchError {
  constructor (readonly status: number, message: string, code: ErrorCode, readonly headers: Record<string, string> = {}) {
    super(message, code)
  }
}

/** A handler's answer that is not JSON: bytes of a content type. */
class Binary {
  constructor (readonly type: string, readonly body: Buffer) {}
}

const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  ERR_INVALID_ARG: 400,
  ERR_BAD_FILE: 400,
  ERR_UNAUTHORIZED: 401,
  ERR_NOT_FOUND: 404,
  ERR_TIMEOUT: 408,
  ERR_MODEL_MISMATCH: 409,
  ERR_TOO_LARGE: 413,
  ERR_UNSUPPORTED: 501,
  ERR_BUSY: 503
}

// ---- metrics (Prometheus text) ----

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256]

class Histogram {
  readonly counts: number[]
  sum = 0
  count = 0
  constructor (readonly buckets: number[]) { this.counts = buckets.map(() => 0) }
  observe (x: number): void {
    this.sum += x
    this.count++
    this.buckets.forEach((b, i) => { if (x <= b) this.counts[i] = (this.counts[i] ?? 0) + 1 })
  }

  lines (name: string, labels: string): string[] {
    const sep = labels === '' ? '' : ','
    const own = labels === '' ? '' : `{${labels}}`
    return [
      ...this.buckets.map((b, i) => `${name}_bucket{${labels}${sep}le="${b}"} ${this.counts[i] ?? 0}`),
      `${name}_bucket{${labels}${sep}le="+Inf"} ${this.count}`,
      `${name}_sum${own} ${this.sum}`,
      `${name}_count${own} ${this.count}`
    ]
  }
}

class Metrics {
  readonly requests = new Map<string, number>() // `endpoint status` -> count
  readonly latency = new Map<string, Histogram>() // endpoint -> seconds
  readonly images = new Histogram(SIZE_BUCKETS)
  inFlight = 0

  record (endpoint: string, status: number, seconds: number): void {
    const key = `${endpoint} ${status}`
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1)
    let h = this.latency.get(endpoint)
    if (!h) this.latency.set(endpoint, h = new Histogram(LATENCY_BUCKETS))
    h.observe(seconds)
  }

  /** Prometheus text: the requests, and the shared forward passes and waiting calls of each model. */
  text (models: ReadonlyMap<string, SiameseModel>): string {
    const passes: string[] = []
    const waiting: string[] = []
    for (const [name, model] of models) {
      let s: NativeBatchStats
      try {
        s = batchStats(model)
      } catch {
        continue // disposed under the server by its owner
      }
      const label = `model="${name}"`
      let cumulative = 0
      s.bySize.forEach((n, i) => {
        cumulative += n
        passes.push(`siamese_forward_pass_pairs_bucket{${label},le="${i < SIZE_BUCKETS.length ? SIZE_BUCKETS[i] ?? '+Inf' : '+Inf'}"} ${cumulative}`)
      })
      passes.push(`siamese_forward_pass_pairs_sum{${label}} ${s.pairs}`, `siamese_forward_pass_pairs_count{${label}} ${s.passes}`)
      waiting.push(`siamese_model_waiting_calls{${label}} ${s.waiting}`)
    }
    const out = [
      '# HELP siamese_requests_total Requests answered, by endpoint and status.',
      '# TYPE siamese_requests_total counter',
      ...[...this.requests].map(([key, n]) => {
        const [endpoint, status] = key.split(' ')
        return `siamese_requests_total{endpoint="${endpoint}",status="${status}"} ${n}`
      }),
      '# HELP siamese_request_duration_seconds Time from a request\'s arrival to its answer.',
      '# TYPE siamese_request_duration_seconds histogram',
      ...[...this.latency].flatMap(([endpoint, h]) => h.lines('siamese_request_duration_seconds', `endpoint="${endpoint}"`)),
      '# HELP siamese_request_images Images a request carried.',
      '# TYPE siamese_request_images histogram',
      ...this.images.lines('siamese_request_images', ''),
      '# HELP siamese_requests_in_flight Requests received and not yet answered (the queue depth).',
      '# TYPE siamese_requests_in_flight gauge',
      `siamese_requests_in_flight ${this.inFlight}`,
      '# HELP siamese_forward_pass_pairs Pairs each forward pass of a model carried: concurrent compare and pair-infer requests share passes.',
      '# TYPE siamese_forward_pass_pairs histogram',
      ...passes,
      '# HELP siamese_model_waiting_calls Pair calls waiting for the model\'s next forward pass.',
      '# TYPE siamese_model_waiting_calls gauge',
      ...waiting
    ]
    return `${out.join('\n')}\n`
  }
}

// ---- requests ----

/** The body, within the size limit and the time limit. */
async function readBody (req: IncomingMessage, limits: ServeLimits): Promise<Buffer> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limits.bodyBytes) {
    throw new HttpError(413, `the body is ${declared} bytes, more than the limit of ${limits.bodyBytes}`, 'ERR_TOO_LARGE')
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const timer = setTimeout(() => {
      reject(new HttpError(408, `the request did not arrive whole within ${limits.requestTimeoutMs} ms`, 'ERR_TIMEOUT', { Connection: 'close' }))
    }, limits.requestTimeoutMs)
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > limits.bodyBytes) {
        clearTimeout(timer)
        reject(new HttpError(413, `the body is more than the limit of ${limits.bodyBytes} bytes`, 'ERR_TOO_LARGE', { Connection: 'close' }))
        req.pause()
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => { clearTimeout(timer); resolve(Buffer.concat(chunks)) })
    req.on('error', (err) => { clearTimeout(timer); reject(err) })
  })
}

const contentType = (req: IncomingMessage): string => (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? ''

async function readJson (req: IncomingMessage, limits: ServeLimits): Promise<Record<string, unknown>> {
  const type = contentType(req)
  if (type !== 'application/json') {
    throw new HttpError(415, `expected a body of type application/json, not ${type === '' ? 'none' : type}`, 'ERR_INVALID_ARG')
  }
  const body = await readBody(req, limits)
  let value: unknown
  try {
    value = JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw new HttpError(400, `the body is not JSON: ${err instanceof Error ? err.message : String(err)}`, 'ERR_INVALID_ARG')
  }
  if (!isPlainObject(value)) throw new HttpError(400, 'the body must be a JSON object', 'ERR_INVALID_ARG')
  return value
}

/** A multipart/form-data body: its files by field name, and its plain fields; within the limits. */
async function readMultipart (req: IncomingMessage, limits: ServeLimits): Promise<{ files: Map<string, Buffer[]>, fields: Map<string, string> }> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limits.bodyBytes) {
    throw new HttpError(413, `the body is ${declared} bytes, more than the limit of ${limits.bodyBytes}`, 'ERR_TOO_LARGE')
  }
  let parser: busboy.Busboy
  try {
    parser = busboy({ headers: req.headers, limits: { fileSize: limits.bodyBytes, files: limits.images, fields: 16, fieldSize: 1024 } })
  } catch (err) {
    throw new HttpError(400, `not a multipart/form-data body (${err instanceof Error ? err.message : String(err)})`, 'ERR_INVALID_ARG')
  }
  return new Promise((resolve, reject) => {
    const files = new Map<string, Buffer[]>()
    const fields = new Map<string, string>()
    let size = 0
    let failed = false
    const fail = (err: HttpError): void => {
      if (failed) return
      failed = true
      clearTimeout(timer)
      req.unpipe(parser)
      reject(err)
    }
    const timer = setTimeout(() => fail(new HttpError(408, `the request did not arrive whole within ${limits.requestTimeoutMs} ms`, 'ERR_TIMEOUT', { Connection: 'close' })),
      limits.requestTimeoutMs)
    parser.on('file', (name, stream) => {
      const chunks: Buffer[] = []
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > limits.bodyBytes) fail(new HttpError(413, `the body is more than the limit of ${limits.bodyBytes} bytes`, 'ERR_TOO_LARGE', { Connection: 'close' }))
        else chunks.push(chunk)
      })
      stream.on('end', () => { files.set(name, [...(files.get(name) ?? []), Buffer.concat(chunks)]) })
      // A part cut short errors on its own stream as well as the parser's: both are handled.
      stream.on('error', (err: Error) => fail(new HttpError(400, `a malformed multipart body (${err.message})`, 'ERR_INVALID_ARG', { Connection: 'close' })))
    })
    parser.on('field', (name, value) => fields.set(name, value))
    parser.on('filesLimit', () => fail(new HttpError(413, `more than ${limits.images} images in one request`, 'ERR_TOO_LARGE', { Connection: 'close' })))
    parser.on('error', (err: Error) => fail(new HttpError(400, `a malformed multipart body (${err.message})`, 'ERR_INVALID_ARG', { Connection: 'close' })))
    parser.on('close', () => {
      if (failed) return
      clearTimeout(timer)
      resolve({ files, fields })
    })
    req.on('aborted', () => fail(new HttpError(400, 'the client left before its body ended', 'ERR_INVALID_ARG')))
    req.pipe(parser)
  })
}

/** The images and the other fields of a request: JSON (base64 images) or multipart (files and fields). */
async function readImages (req: IncomingMessage, limits: ServeLimits, names: string[]): Promise<{ images: Map<string, Buffer[]>, fields: Record<string, unknown> }> {
  const images = new Map<string, Buffer[]>()
  if (contentType(req) === 'multipart/form-data') {
    const { files, fields } = await readMultipart(req, limits)
    for (const name of names) {
      const list = files.get(name) ?? []
      images.set(name, await Promise.all(list.map(async (bytes, i) => checkedImage(bytes, list.length > 1 ? `${name}[${i}]` : name, limits))))
    }
    return { images, fields: Object.fromEntries(fields) }
  }
  const body = await readJson(req, limits)
  for (const name of names) {
    const value = body[name]
    const list: unknown[] = Array.isArray(value) ? value : value === undefined ? [] : [value]
    checkImageCount(list.length, limits)
    images.set(name, await Promise.all(list.map(async (d, i) => encodedImage(d, Array.isArray(value) ? `${name}[${i}]` : name, limits))))
  }
  return { images, fields: body }
}

/** An encoded image (base64), checked from its header before anything decodes it. */
async function encodedImage (text: unknown, name: string, limits: ServeLimits): Promise<Buffer> {
  if (typeof text !== 'string' || text.length === 0) throw invalidArg(name, 'an encoded image (PNG, JPEG, WebP...) in base64', text)
  return checkedImage(Buffer.from(text.replace(/^data:[^,]*,/, ''), 'base64'), name, limits)
}

/** An encoded image's bytes, checked from its header (its pixel count) before anything decodes it. */
async function checkedImage (bytes: Buffer, name: string, limits: ServeLimits): Promise<Buffer> {
  // A PNG's size is in its first chunk, read here; other formats' headers are read by sharp. The
  // header only (no decoding), whatever its size: the limit below is the one that answers.
  let meta: { width?: number | undefined, height?: number | undefined } | undefined = pngSize(bytes)
  if (meta === undefined) {
    try {
      meta = await sharp(bytes, { limitInputPixels: false }).metadata()
    } catch (err) {
      throw new HttpError(400, `${name}: not an image sharp can read (${err instanceof Error ? err.message : String(err)})`, 'ERR_BAD_FILE')
    }
  }
  const pixels = (meta.width ?? 0) * (meta.height ?? 0)
  if (pixels > limits.imagePixels) {
    throw new HttpError(413, `${name}: ${meta.width}x${meta.height} is ${pixels} pixels, more than the limit of ${limits.imagePixels}`, 'ERR_TOO_LARGE')
  }
  return bytes
}

function checkImageCount (n: number, limits: ServeLimits): void {
  if (n > limits.images) throw new HttpError(413, `${n} images in one request, more than the limit of ${limits.images}`, 'ERR_TOO_LARGE')
}

/** A v2 tensor of images: BYTES (encoded images, base64) or UINT8 pixels shaped [N, H, W] or [N, H, W, C]. */
async function v2Images (input: unknown, name: string, limits: ServeLimits): Promise<Array<Buffer | RawImage>> {
  if (!isPlainObject(input)) throw invalidArg(name, 'a tensor object { name, datatype, shape, data }', input)
  const { datatype, shape, data } = input
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && (d as number) > 0)) throw invalidArg(`${name}.shape`, 'an array of positive integers', shape)
  if (!Array.isArray(data)) throw invalidArg(`${name}.data`, 'an array', data)
  const n = shape[0] as number
  checkImageCount(n, limits)
  if (datatype === 'BYTES') {
    if (shape.length !== 1 || data.length !== n) throw invalidArg(`${name}`, 'BYTES of shape [N] with N base64 images', shape)
    return Promise.all(data.map(async (d, i) => encodedImage(d, `${name}.data[${i}]`, limits)))
  }
  if (datatype !== 'UINT8') throw invalidArg(`${name}.datatype`, "'BYTES' (encoded images) or 'UINT8' (pixels)", datatype)
  if (shape.length !== 3 && shape.length !== 4) throw invalidArg(`${name}.shape`, '[N, H, W] or [N, H, W, C]', shape)
  const [, height, width, channels = 1] = shape as number[]
  if (!(channels >= 1 && channels <= 4)) throw invalidArg(`${name}.shape`, '1 to 4 channels', shape)
  const size = (height ?? 0) * (width ?? 0) * channels
  if ((height ?? 0) * (width ?? 0) > limits.imagePixels) throw new HttpError(413, `${name}: images of more than ${limits.imagePixels} pixels`, 'ERR_TOO_LARGE')
  if (data.length !== n * size) throw invalidArg(`${name}.data`, `${n * size} values (the shape's)`, data)
  return Array.from({ length: n }, (_, i) => ({
    data: Uint8Array.from(data.slice(i * size, (i + 1) * size) as number[], (v) => {
      if (!(Number.isInteger(v) && v >= 0 && v <= 255)) throw invalidArg(`${name}.data`, 'integers from 0 to 255', v)
      return v
    }),
    width: width ?? 0,
    height: height ?? 0,
    channels: channels as 1 | 2 | 3 | 4
  }))
}

// ---- the server ----

function modelsByName (models: ServeOptions['models'], training: boolean): Array<[string, string | SiameseModel]> {
  const entries: Array<[string, string | SiameseModel]> = Array.isArray(models)
    ? (models as ReadonlyArray<string | SiameseModel>).map((m, i) => [typeof m === 'string' ? basename(m, extname(m)) : `model-${i}`, m])
    : isPlainObject(models) ? Object.entries(models as Record<string, string | SiameseModel>) : []
  if (entries.length === 0 && !(training && (Array.isArray(models) || isPlainObject(models)))) {
    throw invalidArg('models', 'model files or models, in an array or by name', models)
  }
  const names = new Set<string>()
  for (const [name] of entries) {
    checkModelName(name, names, 'models')
    names.add(name)
  }
  return entries
}

function checkModelName (name: unknown, taken: ReadonlySet<string>, option: string): string {
  if (typeof name !== 'string' || !/^[\w.-]+$/.test(name)) throw invalidArg(option, 'names of letters, digits, _, . and - (they are URL path parts)', name)
  if (taken.has(name)) throw invalidArg(option, 'distinct names (give an object to name them)', name)
  return name
}

/**
 * Serves models over HTTP: the Open Inference Protocol (KServe v2) health, metadata and `infer`
 * endpoints, `POST /compare` and `POST /embed` in plain JSON, and `GET /metrics` (Prometheus).
 * Loopback only unless `host` says otherwise. See docs/serve.md.
 *
 * @example
 * ```ts
 * import { serve } from 'siamese-torch'
 * const server = await serve({ models: ['digits.safetensors'], port: 8080 })
 * // curl -s localhost:8080/compare -H 'content-type: application/json' -d '{"a":"<base64 png>","b":"<base64 png>"}'
 * await server.close()
 * ```
 */
export async function serve (options: ServeOptions): Promise<ServeHandle> {
  if (!isPlainObject(options)) throw invalidArg('options', 'an object with models', options)
  const port = options.port === undefined ? 8080 : integerIn(options.port, 'port', 0, 65535)
  const host = options.host === undefined ? '127.0.0.1' : nonEmptyString(options.host, 'host')
  const token = options.token === undefined ? undefined : nonEmptyString(options.token, 'token')
  const threads = options.threads === undefined ? {} : { threads: integerIn(options.threads, 'threads', 1, 1024) }
  const limits: ServeLimits = { ...DEFAULT_LIMITS }
  if (options.limits !== undefined) {
    if (!isPlainObject(options.limits)) throw invalidArg('limits', 'an object of ServeLimits', options.limits)
    for (const [key, value] of Object.entries(options.limits)) {
      if (!(key in DEFAULT_LIMITS)) throw invalidArg('limits', `only ${Object.keys(DEFAULT_LIMITS).join(', ')}`, key)
      limits[key as keyof ServeLimits] = integerIn(value, `limits.${key}`, 1)
    }
  }
  if (options.training !== undefined && !(options.training instanceof TrainingFeed)) throw invalidArg('training', 'a TrainingFeed', options.training)
  const entries = modelsByName(options.models, options.training !== undefined)
  const loaded: SiameseModel[] = []
  const models = new Map<string, SiameseModel>()
  try {
    for (const [name, m] of entries) {
      const model = typeof m === 'string' ? await loadModel(m, threads) : m
      if (typeof m === 'string') loaded.push(model)
      models.set(name, model)
    }
  } catch (err) {
    for (const m of loaded) m.dispose()
    throw err
  }

  const metrics = new Metrics()
  const modelOf = (name: string | undefined): SiameseModel => {
    const model = name === undefined ? undefined : models.get(decodeURIComponent(name))
    if (!model) throw new HttpError(404, `no model named ${name ?? ''} (served: ${[...models.keys()].join(', ')})`, 'ERR_NOT_FOUND')
    return model
  }
  const only = (): SiameseModel => {
    const [first] = models.values()
    if (models.size !== 1 || first === undefined) {
      throw models.size === 0
        ? new HttpError(503, 'no model is served yet', 'ERR_BUSY', { 'Retry-After': '5' })
        : invalidArg('model', `the name of one of the served models (${[...models.keys()].join(', ')})`, undefined)
    }
    return first
  }
  const pickModel = (body: Record<string, unknown>): SiameseModel => (body['model'] === undefined ? only() : modelOf(nonEmptyString(body['model'], 'model')))

  const metadataOf = (name: string, model: SiameseModel): Record<string, unknown> => {
    const { width, height, channels, embeddingSize, loss, tower } = model.config
    return {
      name,
      versions: ['1'],
      platform: `siamese-torch_${tower}`,
      inputs: [
        { name: 'left', datatype: 'BYTES', shape: [-1] },
        { name: 'right', datatype: 'BYTES', shape: [-1] },
        { name: 'images', datatype: 'BYTES', shape: [-1] }
      ],
      outputs: [
        { name: 'p_same', datatype: 'FP32', shape: [-1] },
        { name: 'distance', datatype: 'FP32', shape: [-1] },
        { name: 'embedding', datatype: 'FP32', shape: [-1, embeddingSize] }
      ],
      parameters: { width, height, channels, loss, threshold: model.config.threshold, pixels: `UINT8 [N, ${height}, ${width}${channels === 3 ? ', 3' : ''}] also taken` }
    }
  }

  // ---- galleries ----
  const galleryDir = options.galleries === undefined ? undefined : resolve(nonEmptyString(options.galleries, 'galleries'))
  if (galleryDir !== undefined) await mkdir(galleryDir, { recursive: true })
  const fingerprints = new Map<SiameseModel, Promise<string>>()
  const fingerprintOf = async (model: SiameseModel): Promise<string> => {
    let f = fingerprints.get(model)
    if (!f) fingerprints.set(model, f = model.fingerprint())
    return f
  }
  const nameOf = (model: SiameseModel): string => [...models].find(([, m]) => m === model)?.[0] ?? ''
  /** The served model a gallery was made with (by its recorded fingerprint); 409 when none is. */
  const modelWithFingerprint = async (name: string, recorded: string): Promise<SiameseModel> => {
    for (const m of models.values()) if (await fingerprintOf(m) === recorded) return m
    throw new SiameseTorchError(`the gallery ${name} was made with a model this server does not serve (fingerprint ${recorded}); serve that model, or re-embed the gallery with openGallery(file, model, { reembed: true })`, 'ERR_MODEL_MISMATCH')
  }
  const opened = new Map<string, Promise<Gallery>>()
  const galleryOf = async (encoded: string | undefined, create?: Record<string, unknown>): Promise<Gallery> => {
    if (galleryDir === undefined) throw new HttpError(404, 'this server has no galleries (serve it with a galleries folder: --galleries DIR)', 'ERR_NOT_FOUND')
    const name = decodeURIComponent(encoded ?? '')
    if (!/^[\w-][\w.-]{0,127}$/.test(name)) throw invalidArg('gallery', 'a name of letters, digits, _, . and - (not starting with .)', name)
    let gallery = opened.get(name)
    if (gallery) return gallery
    const file = join(galleryDir, `${name}.sqlite`)
    const recorded = galleryFingerprint(file)
    if (recorded === undefined && create === undefined) throw new HttpError(404, `no gallery named ${name}`, 'ERR_NOT_FOUND')
    const model = recorded === undefined ? pickModel(create ?? {}) : await modelWithFingerprint(name, recorded)
    gallery = openGallery(file, model)
    opened.set(name, gallery)
    gallery.catch(() => opened.delete(name))
    return gallery
  }
  const galleryFromBody = (fields: Record<string, unknown>): string => nonEmptyString(fields['gallery'], 'gallery')
  const kOf = (value: unknown, fallback: number): number => (value === undefined || value === '' ? fallback : integerIn(typeof value === 'string' ? Number(value) : value, 'k', 1, 1000))
  const matchJson = (m: GalleryMatch): Record<string, unknown> => ({ id: m.id, label: m.label, pSame: m.pSame, score: m.pSame, distance: m.distance, same: m.same })
  const queryImages = (found: Map<string, Buffer[]>): { list: Buffer[], many: boolean } => {
    const one = found.get('image') ?? []
    const many = found.get('images') ?? []
    if (one.length + many.length === 0) throw invalidArg('image', 'an image (or images: a list)', undefined)
    if (one.length > 0 && many.length > 0) throw invalidArg('images', 'either image or images, not both', many.length)
    metrics.images.observe(one.length + many.length)
    return { list: one.length > 0 ? one : many, many: many.length > 0 }
  }
  /** An `/identify` or `/classify` request: its images, the gallery it names, and the answer's head. */
  const galleryQuery = async (req: IncomingMessage): Promise<{ list: Buffer[], many: boolean, gallery: Gallery, fields: Record<string, unknown>, head: Record<string, unknown> }> => {
    const { images: found, fields } = await readImages(req, limits, ['image', 'images'])
    const { list, many } = queryImages(found)
    const gallery = await galleryOf(galleryFromBody(fields))
    return { list, many, gallery, fields, head: { gallery: fields['gallery'], model: nameOf(gallery.model), threshold: gallery.model.config.threshold } }
  }
  const searchParams = (req: IncomingMessage): URLSearchParams => new URL(req.url ?? '/', 'http://localhost').searchParams

  type Handler = (req: IncomingMessage, params: string[]) => unknown
  const routes: Array<{ method: string, path: RegExp, endpoint: string, open?: boolean, handle: Handler }> = [
    { method: 'GET', path: /^\/v2\/health\/live$/, endpoint: 'live', open: true, handle: () => ({ live: true }) },
    { method: 'GET', path: /^\/v2\/health\/ready$/, endpoint: 'ready', open: true, handle: () => ({ ready: true }) },
    { method: 'GET', path: /^\/v2$/, endpoint: 'server', handle: () => ({ name: 'siamese-torch', version: packageVersion(), extensions: [] }) },
    { method: 'GET', path: /^\/v2\/models\/([^/]+)$/, endpoint: 'model', handle: (_req, [name]) => metadataOf(decodeURIComponent(name ?? ''), modelOf(name)) },
    { method: 'GET', path: /^\/v2\/models\/([^/]+)\/ready$/, endpoint: 'model_ready', handle: (_req, [name]) => { modelOf(name); return { name: decodeURIComponent(name ?? ''), ready: true } } },
    {
      method: 'POST',
      path: /^\/v2\/models\/([^/]+)\/infer$/,
      endpoint: 'infer',
      handle: async (req, [name]) => {
        const model = modelOf(name)
        const body = await readJson(req, limits)
        const inputs = body['inputs']
        if (!Array.isArray(inputs)) throw invalidArg('inputs', 'an array of tensors', inputs)
        const byName = new Map(inputs.map((t) => [isPlainObject(t) ? t['name'] : undefined, t]))
        const outputs: unknown[] = []
        if (byName.has('left') || byName.has('right')) {
          const [left, right] = await Promise.all([v2Images(byName.get('left'), 'left', limits), v2Images(byName.get('right'), 'right', limits)])
          if (left.length !== right.length) throw invalidArg('right', `${left.length} images, as many as left`, right.length)
          checkImageCount(2 * left.length, limits)
          metrics.images.observe(2 * left.length)
          const verdicts = await model.compare(left, right)
          outputs.push({ name: 'p_same', datatype: 'FP32', shape: [verdicts.length], data: verdicts.map((v) => v.pSame) },
            { name: 'distance', datatype: 'FP32', shape: [verdicts.length], data: verdicts.map((v) => v.distance) })
        } else if (byName.has('images')) {
          const images = await v2Images(byName.get('images'), 'images', limits)
          metrics.images.observe(images.length)
          const e = await model.embed(images)
          outputs.push({ name: 'embedding', datatype: 'FP32', shape: [e.length, model.config.embeddingSize], data: e.flatMap((row) => Array.from(row)) })
        } else {
          throw invalidArg('inputs', "tensors named 'left' and 'right' (pairs) or 'images' (embeddings)", [...byName.keys()])
        }
        return { model_name: decodeURIComponent(name ?? ''), model_version: '1', ...(typeof body['id'] === 'string' ? { id: body['id'] } : {}), outputs }
      }
    },
    {
      method: 'POST',
      path: /^\/compare$/,
      endpoint: 'compare',
      handle: async (req) => {
        const { images, fields } = await readImages(req, limits, ['a', 'b'])
        const model = pickModel(fields)
        const [a] = images.get('a') ?? []
        const [b] = images.get('b') ?? []
        if (a === undefined || (images.get('a') ?? []).length > 1) throw invalidArg('a', 'one image', images.get('a')?.length ?? 0)
        if (b === undefined || (images.get('b') ?? []).length > 1) throw invalidArg('b', 'one image', images.get('b')?.length ?? 0)
        metrics.images.observe(2)
        return { ...await model.compare(a, b), threshold: model.config.threshold }
      }
    },
    {
      method: 'POST',
      path: /^\/embed$/,
      endpoint: 'embed',
      handle: async (req) => {
        const { images: found, fields } = await readImages(req, limits, ['images'])
        const model = pickModel(fields)
        const images = found.get('images') ?? []
        if (images.length === 0) throw invalidArg('images', 'one image or more', 0)
        metrics.images.observe(images.length)
        return { embeddings: (await model.embed(images)).map((e) => Array.from(e)) }
      }
    },
    {
      method: 'GET',
      path: /^\/galleries$/,
      endpoint: 'galleries',
      handle: async () => {
        if (galleryDir === undefined) throw new HttpError(404, 'this server has no galleries (serve it with a galleries folder: --galleries DIR)', 'ERR_NOT_FOUND')
        const names = (await readdir(galleryDir)).filter((f) => f.endsWith('.sqlite')).map((f) => f.slice(0, -'.sqlite'.length)).sort()
        // An open gallery answers from memory; another from its file's counts, without loading its
        // embeddings (a million items take seconds and gigabytes to open).
        const listed = async (name: string): Promise<Record<string, unknown>> => {
          const open = opened.get(name)
          if (open) {
            const g = await open
            return { name, model: nameOf(g.model), items: g.size, labels: g.labels().length }
          }
          const summary = gallerySummary(join(galleryDir, `${name}.sqlite`))
          if (summary === undefined) throw new HttpError(404, `no gallery named ${name}`, 'ERR_NOT_FOUND')
          return { name, model: nameOf(await modelWithFingerprint(name, summary.fingerprint)), items: summary.items, labels: summary.labels }
        }
        return {
          galleries: await Promise.all(names.map(async (name) => listed(name).catch((err: unknown) => {
            const e = err instanceof SiameseTorchError ? err : new SiameseTorchError(String(err), 'ERR_NATIVE')
            return { name, model: null, items: null, labels: null, error: { code: e.code, message: e.message } }
          })))
        }
      }
    },
    {
      method: 'POST',
      path: /^\/galleries\/([^/]+)\/items$/,
      endpoint: 'gallery_enrol',
      handle: async (req, [name]) => {
        const { images: found, fields } = await readImages(req, limits, ['image', 'images'])
        const { list } = queryImages(found)
        const label = nonEmptyString(fields['label'], 'label')
        const gallery = await galleryOf(name, fields)
        if (fields['model'] !== undefined && pickModel(fields) !== gallery.model) {
          throw new SiameseTorchError(`the gallery ${decodeURIComponent(name ?? '')} belongs to the model ${nameOf(gallery.model)}, not ${nonEmptyString(fields['model'], 'model')}`,
            'ERR_MODEL_MISMATCH')
        }
        const added = await gallery.enrol(label, list)
        return { gallery: decodeURIComponent(name ?? ''), model: nameOf(gallery.model), items: added, size: gallery.size }
      }
    },
    {
      method: 'GET',
      path: /^\/galleries\/([^/]+)\/items$/,
      endpoint: 'gallery_list',
      handle: async (req, [name]) => {
        const q = searchParams(req)
        const number = (key: string): number | undefined => (q.get(key) === null ? undefined : Number(q.get(key)))
        const gallery = await galleryOf(name)
        const label = q.get('label')
        const offset = number('offset')
        const limit = number('limit')
        return {
          ...gallery.list({ ...(label !== null ? { label } : {}), ...(offset !== undefined ? { offset } : {}), ...(limit !== undefined ? { limit } : {}) }),
          labels: gallery.labels()
        }
      }
    },
    {
      method: 'DELETE',
      path: /^\/galleries\/([^/]+)\/items$/,
      endpoint: 'gallery_remove',
      handle: async (req, [name]) => {
        const label = searchParams(req).get('label')
        if (label === null) throw invalidArg('label', 'the label whose items to remove (?label=...)', undefined)
        const gallery = await galleryOf(name)
        return { removed: await gallery.removeLabel(label), size: gallery.size }
      }
    },
    {
      method: 'DELETE',
      path: /^\/galleries\/([^/]+)\/items\/(\d+)$/,
      endpoint: 'gallery_remove',
      handle: async (_req, [name, id]) => {
        const gallery = await galleryOf(name)
        if (await gallery.remove(Number(id)) === 0) throw new HttpError(404, `no item ${id ?? ''} in the gallery`, 'ERR_NOT_FOUND')
        return { removed: 1, size: gallery.size }
      }
    },
    {
      method: 'GET',
      path: /^\/galleries\/([^/]+)\/items\/(\d+)\/image$/,
      endpoint: 'gallery_image',
      handle: async (_req, [name, id]) => {
        const image = (await galleryOf(name)).image(Number(id))
        if (!image) throw new HttpError(404, `no item ${id ?? ''} in the gallery`, 'ERR_NOT_FOUND')
        return new Binary('image/png', image)
      }
    },
    {
      method: 'POST',
      path: /^\/identify$/,
      endpoint: 'identify',
      handle: async (req) => {
        const { list, many, gallery, fields, head } = await galleryQuery(req)
        const lists = await gallery.identify(list, { k: kOf(fields['k'], 5) })
        return many ? { ...head, matches: lists.map((l) => l.map(matchJson)) } : { ...head, matches: (lists[0] ?? []).map(matchJson) }
      }
    },
    {
      method: 'POST',
      path: /^\/classify$/,
      endpoint: 'classify',
      handle: async (req) => {
        const { list, many, gallery, fields, head } = await galleryQuery(req)
        const verdicts = (await gallery.classify(list, { k: kOf(fields['k'], 10) })).map((v) => ({
          label: v.label ?? null,
          known: v.known,
          classes: v.classes.map((c) => ({ ...c, examples: c.examples.map(matchJson) }))
        }))
        return many ? { ...head, results: verdicts } : { ...head, ...verdicts[0] }
      }
    }
  ]

  const answer = (res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void => {
    if (res.headersSent) return
    if (value instanceof Binary) {
      res.writeHead(status, { 'Content-Type': value.type, 'Content-Length': value.body.byteLength, 'Cache-Control': 'no-cache', ...headers })
      res.end(value.body)
      return
    }
    const text = typeof value === 'string' ? value : JSON.stringify(value)
    res.writeHead(status, {
      'Content-Type': typeof value === 'string' ? 'text/plain; version=0.0.4; charset=utf-8' : 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(text),
      ...headers
    })
    res.end(text)
  }

  // The page at / and live training (lib/page.ts): asked first, below; galleries are the server's routes.
  const page = pageRoutes({ models, training: options.training, token, galleries: () => galleryDir !== undefined })

  // One request, start to answer; every failure becomes a JSON error, and is counted.
  const handleRequest = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const t0 = performance.now()
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    let endpoint = 'other'
    metrics.inFlight++
    let status = 200
    try {
      if (path === '/metrics' && req.method === 'GET') {
        endpoint = 'metrics'
        answer(res, 200, metrics.text(models))
        return
      }
      const paged = await page.handle(req, res, path)
      if (paged !== undefined) {
        ({ endpoint, status } = paged)
        return
      }
      const matching = routes.filter((r) => r.path.test(path))
      const route = matching.find((r) => r.method === req.method) ?? matching[0]
      if (!route) throw new HttpError(404, `no endpoint ${path}`, 'ERR_NOT_FOUND')
      endpoint = route.endpoint
      if (req.method !== route.method) {
        const allowed = matching.map((r) => r.method).join(', ')
        throw new HttpError(405, `${path} takes ${allowed}, not ${req.method ?? ''}`, 'ERR_INVALID_ARG', { Allow: allowed })
      }
      if (token !== undefined && route.open !== true && req.headers.authorization !== `Bearer ${token}`) {
        throw new HttpError(401, 'this server needs Authorization: Bearer <token>', 'ERR_UNAUTHORIZED', { 'WWW-Authenticate': 'Bearer' })
      }
      if (metrics.inFlight > limits.queue) {
        throw new HttpError(503, `${metrics.inFlight - 1} requests in flight, the most this server queues is ${limits.queue}`, 'ERR_BUSY', { 'Retry-After': '1' })
      }
      const params = route.path.exec(path)?.slice(1) ?? []
      answer(res, 200, await route.handle(req, params))
    } catch (err) {
      const e = err instanceof SiameseTorchError ? err : new SiameseTorchError(err instanceof Error ? err.message : String(err), 'ERR_NATIVE')
      status = e instanceof HttpError ? e.status : STATUS_OF[e.code] ?? 500
      answer(res, status, { error: { code: e.code, message: e.message } }, e instanceof HttpError ? e.headers : {})
      // A request refused before its body was read whole: the rest of it is not wanted.
      if (e instanceof HttpError && e.headers['Connection'] === 'close') res.once('finish', () => req.destroy())
    } finally {
      metrics.inFlight--
      metrics.record(endpoint, status, (performance.now() - t0) / 1000)
    }
  }
  // Requests being handled, so that close() waits for them all, those whose client left too.
  const handling = new Set<Promise<void>>()
  const server: Server = createServer((req, res) => {
    const handled: Promise<void> = handleRequest(req, res).catch(() => { res.destroy() }).finally(() => handling.delete(handled))
    handling.add(handled)
  })
  // Node's own limits stay above ours, so that ours answer (in JSON) first.
  server.requestTimeout = limits.requestTimeoutMs + 5000
  server.headersTimeout = Math.min(limits.requestTimeoutMs + 2000, 60_000)

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      for (const m of loaded) m.dispose()
      reject(new SiameseTorchError(`cannot listen on ${host}:${port}: ${err.message}`, err.code === 'EADDRINUSE' ? 'ERR_BUSY' : 'ERR_INVALID_ARG', { cause: err }))
    })
    server.listen(port, host, () => resolve())
  })
  const address = server.address() as AddressInfo
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address
  let closing: Promise<void> | undefined
  return {
    url: `http://${shownHost}:${address.port}`,
    port: address.port,
    host: address.address,
    models,
    addModel: async (name, model) => {
      checkModelName(name, new Set(models.keys()), 'name')
      if (typeof model !== 'string' && !(model instanceof SiameseModel)) throw invalidArg('model', 'a model file or a SiameseModel', model)
      const added = typeof model === 'string' ? await loadModel(model, threads) : model
      if (closing !== undefined || models.has(name)) {
        if (typeof model === 'string') added.dispose()
        throw closing !== undefined ? new SiameseTorchError('the server is closing', 'ERR_DISPOSED') : invalidArg('name', 'a name not served already', name)
      }
      if (typeof model === 'string') loaded.push(added)
      models.set(name, added)
    },
    close: async () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        page.close()
        server.closeIdleConnections()
      }).then(async () => {
        await Promise.allSettled([...handling])
        for (const g of await Promise.allSettled([...opened.values()])) if (g.status === 'fulfilled') g.value.close()
        for (const m of loaded) m.dispose()
      })
      return closing
    }
  }
}
