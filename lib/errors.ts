/**
 * Stable error codes. Every rejection and every thrown error of siamese-torch carries one of
 * these in `error.code`; match on the code, not on the message.
 *
 * - `ERR_INVALID_ARG`: an argument or option of the wrong type, size or range (also NaN or
 *   infinite pixels, empty or mismatched arrays, data too small for what is asked).
 * - `ERR_BAD_FILE`: a file or folder that is missing, unreadable or malformed, or that cannot be
 *   written (no such folder, no permission, disk full, file size limit); `path` names it. A
 *   failed write leaves the previous file as it was.
 * - `ERR_CHECKSUM`, `ERR_DOWNLOAD`: a download that did not verify, or did not arrive.
 * - `ERR_BUSY`: `train` or `dispose()` while a job runs on the model.
 * - `ERR_DISPOSED`: any use of a model after `dispose()`.
 * - `ABORT_ERR`: stopped by an `AbortSignal`.
 * - `ERR_TORCH_OOM`: LibTorch ran out of memory (either CPU allocator, or a GPU's); the job
 *   fails, and the model and the process carry on.
 * - `ERR_TORCH`: any other LibTorch error.
 * - `ERR_CUDA_UNAVAILABLE`: a CUDA device asked for where there is none.
 * - `ERR_UNSUPPORTED`: asked of a CPU or LibTorch build that cannot do it, e.g. `precision: 'bf16'`
 *   on a CPU without AVX512_BF16 or AMX.
 * - `ERR_NOT_FOUND`, `ERR_TOO_LARGE`, `ERR_TIMEOUT`, `ERR_UNAUTHORIZED`: the HTTP server's answers
 *   (`serve`): an unknown model or endpoint (404), a body, image or request over a limit (413),
 *   a request that did not arrive in time (408), a missing or wrong bearer token (401). The server
 *   answers `ERR_BUSY` (503) when its queue is full.
 * - `ERR_MODEL_MISMATCH`: a gallery whose embeddings were made by another model (another
 *   fingerprint): it is refused, or re-embedded when asked (`openGallery(..., { reembed: true })`).
 * - `ERR_DISTRIBUTED`: a distributed run cannot go on: a rank died, hung or cannot be reached, the
 *   store cannot be reached or served, or the ranks were started with other settings; the message
 *   names the rank and the cause.
 * - `ERR_ADDON_LOAD`: the native addon could not be loaded.
 * - `ERR_NATIVE`, `ERR_NATIVE_OOM`: any other native failure, or out of memory outside LibTorch.
 */
export type ErrorCode =
  | 'ERR_INVALID_ARG'
  | 'ERR_BAD_FILE'
  | 'ERR_CHECKSUM'
  | 'ERR_DOWNLOAD'
  | 'ERR_BUSY'
  | 'ERR_DISPOSED'
  | 'ABORT_ERR'
  | 'ERR_TORCH'
  | 'ERR_TORCH_OOM'
  | 'ERR_CUDA_UNAVAILABLE'
  | 'ERR_UNSUPPORTED'
  | 'ERR_DISTRIBUTED'
  | 'ERR_NOT_FOUND'
  | 'ERR_TOO_LARGE'
  | 'ERR_TIMEOUT'
  | 'ERR_UNAUTHORIZED'
  | 'ERR_MODEL_MISMATCH'
  | 'ERR_ADDON_LOAD'
  | 'ERR_NATIVE'
  | 'ERR_NATIVE_OOM'

/** Extra facts about a failure. */
export interface SiameseTorchErrorOptions {
  /** The file involved, where there is one. */
  path?: string
  /** The underlying error, where there is one. */
  cause?: unknown
}

/**
 * The error class of siamese-torch: every error it throws or rejects with is an instance.
 *
 * @example
 * ```ts
 * import { version, SiameseTorchError } from 'siamese-torch'
 * try {
 *   version()
 * } catch (err) {
 *   if (err instanceof SiameseTorchError && err.code === 'ERR_ADDON_LOAD') console.error(err.message)
 * }
 * ```
 */
export class SiameseTorchError extends Error {
  /** A stable code such as `ERR_BAD_FILE`. */
  readonly code: ErrorCode
  /** The file involved, where there is one (absent, not undefined, when there is none). */
  declare readonly path?: string

  constructor (message: string, code: ErrorCode, options: SiameseTorchErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'SiameseTorchError'
    this.code = code
    if (options.path !== undefined) this.path = options.path
  }
}

/** The caller's stack, captured before going native (see `rethrowAtCallSite`). */
export function callSite (): { stack?: string } {
  const holder: { stack?: string } = {}
  Error.captureStackTrace(holder, callSite)
  return holder
}

/**
 * Awaits `promise`; a SiameseTorchError it rejects with gets the caller's stack instead of the
 * internal one, so that users see where they called siamese-torch (sharp's habit).
 */
export async function rethrowAtCallSite<T> (promise: Promise<T>, site: { stack?: string }): Promise<T> {
  try {
    return await promise
  } catch (err) {
    if (err instanceof SiameseTorchError && site.stack !== undefined) {
      const frames = site.stack.split('\n').slice(1).join('\n')
      err.stack = `${err.name} [${err.code}]: ${err.message}\n${frames}`
    }
    throw err
  }
}
