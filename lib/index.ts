/**
 * siamese-torch: Siamese networks for Node.js, trained and run natively with LibTorch.
 * @packageDocumentation
 */
export { version } from './version.js'
export type { VersionInfo, CudaDeviceInfo, LibtorchSource } from './version.js'
export { SiameseTorchError } from './errors.js'
export type { ErrorCode, SiameseTorchErrorOptions } from './errors.js'
