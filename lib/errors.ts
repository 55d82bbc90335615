/**
 * Stable error codes. Every rejection and every thrown error of siamese-torch carries one of
 * these in `error.code`; match on the code, not on the message.
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
