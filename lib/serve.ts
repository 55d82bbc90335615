// `serve()` and `siamese-torch serve`: models behind HTTP, on Node's own http module (no framework:
// the surface is small, and every limit is ours to set; docs/serve.md says why). Endpoints: the
// Open Inference Protocol (KServe v2) subset model servers share, /compare and /embed in plain
// JSON, and /metrics in Prometheus text. Concurrent requests share forward passes through the
// models' own batching (native/addon/batcher.h). Every failure is a JSON error with the
// package's code; nothing a client sends can crash the server.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { basename, extname } from 'node:path'
import { performance } from 'node:perf_hooks'
import busboy from 'busboy'
import sharp from 'sharp'
import { SiameseTorchError, type ErrorCode } from './errors.js'
import type { RawImage } from './inputs.js'
import { loadModel, type SiameseModel } from './model.js'
import { integerIn, invalidArg, isPlainObject, nonEmptyString } from './validate.js'
import { packageVersion } from './version.js'

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
  /** The models: file paths or loaded models, named by their file's name (less `.safetensors`) or by the keys of an object. */
  models: ReadonlyArray<string | SiameseModel> | Readonly<Record<string, string | SiameseModel>>
  /** Default 8080; 0 picks a free port. */
  port?: number
  /** Default `'127.0.0.1'` (this machine only); `'0.0.0.0'` or an address to serve others, explicitly. */
  host?: string
  /** When set, every request but the health checks needs `Authorization: Bearer <token>` (401 `ERR_UNAUTHORIZED`). */
  token?: string
  limits?: Partial<ServeLimits>
}

/** A running server. */
export interface ServeHandle {
  /** e.g. `http://127.0.0.1:8080` */
  url: string
  port: number
  host: string
  /** The models served, by name. */
  models: ReadonlyMap<string, SiameseModel>
  /** Stops accepting requests, finishes those in flight, then frees the models it loaded. */
  close: () => Promise<void>
}

const DEFAULT_LIMITS: ServeLimits = { bodyBytes: 16 << 20, imagePixels: 25_000_000, images: 256, requestTimeoutMs: 30_000, queue: 1024 }

/** A failed request: its HTTP status and the package's code. */
class HttpError extends SiameseTorchError {
  constructor (readonly status: number, message: string, code: ErrorCode, readonly headers: Record<string, string> = {}) {
    super(message, code)
  }
}

const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  ERR_INVALID_ARG: 400,
  ERR_BAD_FILE: 400,
  ERR_UNAUTHORIZED: 401,
  ERR_NOT_FOUND: 404,
  ERR_TIMEOUT: 408,
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

  text (): string {
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
      `siamese_requests_in_flight ${this.inFlight}`
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

/** The images and fields of a /compare or /embed request: JSON (base64 images) or multipart (files). */
async function readImages (req: IncomingMessage, limits: ServeLimits, names: string[]): Promise<{ images: Map<string, Buffer[]>, model: unknown }> {
  const images = new Map<string, Buffer[]>()
  if (contentType(req) === 'multipart/form-data') {
    const { files, fields } = await readMultipart(req, limits)
    for (const name of names) {
      const list = files.get(name) ?? []
      images.set(name, await Promise.all(list.map(async (bytes, i) => checkedImage(bytes, list.length > 1 ? `${name}[${i}]` : name, limits))))
    }
    return { images, model: fields.get('model') }
  }
  const body = await readJson(req, limits)
  for (const name of names) {
    const value = body[name]
    const list: unknown[] = Array.isArray(value) ? value : value === undefined ? [] : [value]
    checkImageCount(list.length, limits)
    images.set(name, await Promise.all(list.map(async (d, i) => encodedImage(d, Array.isArray(value) ? `${name}[${i}]` : name, limits))))
  }
  return { images, model: body['model'] }
}

/** An encoded image (base64), checked from its header before anything decodes it. */
async function encodedImage (text: unknown, name: string, limits: ServeLimits): Promise<Buffer> {
  if (typeof text !== 'string' || text.length === 0) throw invalidArg(name, 'an encoded image (PNG, JPEG, WebP...) in base64', text)
  return checkedImage(Buffer.from(text.replace(/^data:[^,]*,/, ''), 'base64'), name, limits)
}

/** An encoded image's bytes, checked from its header (its pixel count) before anything decodes it. */
async function checkedImage (bytes: Buffer, name: string, limits: ServeLimits): Promise<Buffer> {
  let meta: sharp.Metadata
  try {
    // The header only (no decoding), whatever its size: the limit below is the one that answers.
    meta = await sharp(bytes, { limitInputPixels: false }).metadata()
  } catch (err) {
    throw new HttpError(400, `${name}: not an image sharp can read (${err instanceof Error ? err.message : String(err)})`, 'ERR_BAD_FILE')
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

function modelsByName (models: ServeOptions['models']): Array<[string, string | SiameseModel]> {
  const entries: Array<[string, string | SiameseModel]> = Array.isArray(models)
    ? (models as ReadonlyArray<string | SiameseModel>).map((m, i) => [typeof m === 'string' ? basename(m, extname(m)) : `model-${i}`, m])
    : isPlainObject(models) ? Object.entries(models as Record<string, string | SiameseModel>) : []
  if (entries.length === 0) throw invalidArg('models', 'model files or models, in an array or by name', models)
  const names = new Set<string>()
  for (const [name] of entries) {
    if (!/^[\w.-]+$/.test(name)) throw invalidArg('models', 'names of letters, digits, _, . and - (they are URL path parts)', name)
    if (names.has(name)) throw invalidArg('models', 'distinct names (give an object to name them)', name)
    names.add(name)
  }
  return entries
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
  const limits: ServeLimits = { ...DEFAULT_LIMITS }
  if (options.limits !== undefined) {
    if (!isPlainObject(options.limits)) throw invalidArg('limits', 'an object of ServeLimits', options.limits)
    for (const [key, value] of Object.entries(options.limits)) {
      if (!(key in DEFAULT_LIMITS)) throw invalidArg('limits', `only ${Object.keys(DEFAULT_LIMITS).join(', ')}`, key)
      limits[key as keyof ServeLimits] = integerIn(value, `limits.${key}`, 1)
    }
  }
  const entries = modelsByName(options.models)
  const loaded: SiameseModel[] = []
  const models = new Map<string, SiameseModel>()
  try {
    for (const [name, m] of entries) {
      const model = typeof m === 'string' ? await loadModel(m) : m
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
    const name = models.size === 1 ? [...models.keys()][0] : undefined
    return modelOf(name)
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
        const { images, model: name } = await readImages(req, limits, ['a', 'b'])
        const model = pickModel({ model: name })
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
        const { images: found, model: name } = await readImages(req, limits, ['images'])
        const model = pickModel({ model: name })
        const images = found.get('images') ?? []
        if (images.length === 0) throw invalidArg('images', 'one image or more', 0)
        metrics.images.observe(images.length)
        return { embeddings: (await model.embed(images)).map((e) => Array.from(e)) }
      }
    }
  ]

  const answer = (res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void => {
    if (res.headersSent) return
    const text = typeof value === 'string' ? value : JSON.stringify(value)
    res.writeHead(status, {
      'Content-Type': typeof value === 'string' ? 'text/plain; version=0.0.4; charset=utf-8' : 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(text),
      ...headers
    })
    res.end(text)
  }

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
        answer(res, 200, metrics.text())
        return
      }
      const route = routes.find((r) => r.path.test(path))
      if (!route) throw new HttpError(404, `no endpoint ${path}`, 'ERR_NOT_FOUND')
      endpoint = route.endpoint
      if (req.method !== route.method) throw new HttpError(405, `${path} takes ${route.method}, not ${req.method ?? ''}`, 'ERR_INVALID_ARG', { Allow: route.method })
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
    close: async () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeIdleConnections()
      }).then(async () => {
        await Promise.allSettled([...handling])
        for (const m of loaded) m.dispose()
      })
      return closing
    }
  }
}
