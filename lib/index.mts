// The ES module entry point: the same objects as the CommonJS one (one addon, one error class).
export { version, SiameseTorchError, datasets } from './index.js'
export type {
  VersionInfo, CudaDeviceInfo, LibtorchSource, ErrorCode, SiameseTorchErrorOptions,
  LabelledImages, DataSplit, ArraysInput, PixelArray, DownloadableOptions, DownloadProgress, IdxOptions,
  ImageFolderOptions, PairScheme, Triplets, Pairs, SamplingOptions, BatchOptions
} from './index.js'
