/**
 * Stable error codes. Every rejection and every thrown error of siamese-torch carries one of
 * these in `error.code`; match on the code, not on the message.
 */
export type ErrorCode =
  | 'ERR_INVALID_ARG'
  | 'ERR_BAD_FILE'
  | 'ERR_CHECKSUM'
  | 'ERR_BUSY'
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
