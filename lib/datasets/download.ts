// Verified downloads: mirrors in order, retries with back-off, MD5 checked while streaming, a
// temporary file in the target folder renamed only once verified. Nothing unverified is ever
// left under the final name.
import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, open, rename, rm } from 'node:fs/promises'
import http from 'node:http'
import https from 'node:https'
import { join } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'

import { SiameseTorchError } from '../errors.js'

/** A progress report while a file downloads. */
export interface DownloadProgress {
  /** The file's name, e.g. `train-images-idx3-ubyte.gz`. */
  file: string
  url: string
  /** Bytes received so far in this attempt. */
  received: number
  /** Bytes expected (Content-Length), when the server says. */
  total?: number
  /** 1 for the first try of this URL. */
  attempt: number
}

export interface DownloadOptions {
  /** Base URLs, tried in order; the file name is appended. */
  mirrors: readonly string[]
  /** Tries per mirror for failures that may pass (network, 5xx, truncated body). Default 3. */
  retries: number
  /** No data for this long aborts the attempt. Default 30 s. */
  timeoutMs: number
  /** Wait before retry k is backoffMs * 2^(k-1). Default 1 s. */
  backoffMs: number
  onProgress?: ((progress: DownloadProgress) => void) | undefined
  signal?: AbortSignal | undefined
}

const MAX_REDIRECTS = 5

class AttemptError extends Error {
  constructor (message: string, readonly permanent: boolean, readonly checksum = false) {
    super(message)
  }
}

function get (url: string, timeoutMs: number, signal: AbortSignal | undefined, redirects = 0): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      reject(new AttemptError('not a valid URL', true))
      return
    }
    const client = parsed.protocol === 'https:' ? https : parsed.protocol === 'http:' ? http : undefined
    if (!client) {
      reject(new AttemptError(`unsupported protocol ${parsed.protocol}`, true))
      return
    }
    const request = client.get(parsed, { signal, headers: { 'user-agent': 'siamese-torch' } }, (response) => {
      const status = response.statusCode ?? 0
      if (status >= 300 && status < 400 && response.headers.location) {
        response.resume()
        if (redirects >= MAX_REDIRECTS) {
          reject(new AttemptError('too many redirects', true))
          return
        }
        get(new URL(response.headers.location, parsed).toString(), timeoutMs, signal, redirects + 1).then(resolve, reject)
        return
      }
      if (status !== 200) {
        response.resume()
        reject(new AttemptError(`HTTP ${status}`, status >= 400 && status < 500 && status !== 408 && status !== 429))
        return
      }
      resolve(response)
    })
    request.setTimeout(timeoutMs, () => request.destroy(new AttemptError(`no data for ${timeoutMs} ms`, false)))
    request.on('error', (err) => reject(err instanceof AttemptError ? err : new AttemptError(err.message, false)))
  })
}

/** One try of one URL into `temp`; resolves with the MD5 of what was written. */
async function attempt (url: string, temp: string, file: string, attemptNo: number, o: DownloadOptions): Promise<string> {
  const response = await get(url, o.timeoutMs, o.signal)
  const lengthHeader = response.headers['content-length']
  const total = lengthHeader === undefined ? undefined : Number(lengthHeader)
  const hash = createHash('md5')
  let received = 0
  let lastReport = 0
  const report = (): void => {
    o.onProgress?.({ file, url, received, attempt: attemptNo, ...(total === undefined ? {} : { total }) })
  }
  const meter = new Transform({
    transform (chunk: Buffer, _encoding, done) {
      hash.update(chunk)
      received += chunk.length
      const now = Date.now()
      if (now - lastReport >= 100) {
        lastReport = now
        report()
      }
      done(null, chunk)
    }
  })
  // The socket timeout set on the request keeps running while the body streams. The socket may be
  // kept alive for the next file, so its listener goes when this body is done.
  const socket = response.socket
  const stalled = (): void => { response.destroy(new AttemptError(`no data for ${o.timeoutMs} ms`, false)) }
  socket?.setTimeout(o.timeoutMs, stalled)
  try {
    await pipeline(response, meter, createWriteStream(temp, { flags: 'wx' }))
  } catch (err) {
    if (o.signal?.aborted) throw err
    const why = err instanceof AttemptError ? err.message : 'connection closed'
    throw new AttemptError(`${why} after ${received}${total === undefined ? '' : ` of ${total}`} bytes`, false)
  } finally {
    socket?.removeListener('timeout', stalled)
  }
  if (total !== undefined && received !== total) {
    throw new AttemptError(`truncated: ${received} of ${total} bytes`, false)
  }
  report()
  const handle = await open(temp, 'r+')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
  return hash.digest('hex')
}

/**
 * Downloads `file` into `dir` from the first mirror that serves it with the right MD5.
 * Rejects with ERR_CHECKSUM when mirrors answered but none with the right bytes, ERR_DOWNLOAD
 * when none could be reached, ABORT_ERR when `signal` aborts; nothing is left behind then.
 */
export async function downloadFile (file: string, md5: string, dir: string, o: DownloadOptions): Promise<string> {
  await mkdir(dir, { recursive: true })
  const target = join(dir, file)
  const failures: string[] = []
  let checksumFailures = 0
  for (const mirror of o.mirrors) {
    const url = mirror.endsWith('/') ? `${mirror}${file}` : `${mirror}/${file}`
    for (let tryNo = 1; tryNo <= o.retries; tryNo++) {
      const temp = join(dir, `.${file}.${randomBytes(6).toString('hex')}.part`)
      try {
        const got = await attempt(url, temp, file, tryNo, o)
        if (got !== md5) throw new AttemptError(`MD5 ${got}, expected ${md5}`, true, true)
        await rename(temp, target)
        return target
      } catch (err) {
        await rm(temp, { force: true })
        if (o.signal?.aborted) {
          throw new SiameseTorchError(`Download of ${file} aborted`, 'ABORT_ERR', { cause: o.signal.reason })
        }
        const failure = err instanceof AttemptError ? err : new AttemptError(String(err), false)
        failures.push(`${url}: ${failure.message}`)
        if (failure.checksum) checksumFailures++
        if (failure.permanent) break
        if (tryNo < o.retries) await sleep(o.backoffMs * 2 ** (tryNo - 1), undefined, { signal: o.signal }).catch(() => {})
      }
    }
  }
  const tried = failures.map((f) => `  - ${f}`).join('\n')
  if (checksumFailures > 0) {
    throw new SiameseTorchError(`${file}: wrong checksum from every mirror that served it; nothing was saved.\n${tried}`,
      'ERR_CHECKSUM', { path: target })
  }
  throw new SiameseTorchError(`${file}: could not be downloaded.\n${tried}`, 'ERR_DOWNLOAD', { path: target })
}

/** A progress reporter for terminals: one updating line on stderr. */
export function stderrProgress (progress: DownloadProgress): void {
  const size = progress.total === undefined ? '' : ` of ${(progress.total / 1e6).toFixed(1)} MB`
  const percent = progress.total ? ` ${Math.floor((100 * progress.received) / progress.total)}%` : ''
  const done = progress.total !== undefined && progress.received === progress.total
  process.stderr.write(`\rdownloading ${progress.file}: ${(progress.received / 1e6).toFixed(1)} MB${size}${percent}${done ? '\n' : ''}`)
}
