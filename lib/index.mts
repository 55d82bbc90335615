// The ES module entry point: the same objects as the CommonJS one (one addon, one error class).
export { version, SiameseTorchError } from './index.js'
export type { VersionInfo, CudaDeviceInfo, LibtorchSource, ErrorCode, SiameseTorchErrorOptions } from './index.js'
