/**
 * siamese-torch: Siamese networks for Node.js, trained and run natively with LibTorch.
 * @packageDocumentation
 */
export { version } from './version.js'
export type { VersionInfo, CudaDeviceInfo, LibtorchSource } from './version.js'
export { SiameseTorchError } from './errors.js'
export type { ErrorCode, SiameseTorchErrorOptions } from './errors.js'
export { datasets } from './datasets/index.js'
export type {
  LabelledImages, DataSplit, ArraysInput, PixelArray, DownloadableOptions, DownloadProgress, IdxOptions,
  ImageFolderOptions, PairScheme, Triplets, Pairs, SamplingOptions, BatchOptions, Catalogue
} from './datasets/index.js'
export { train, createModel, loadModel, SiameseModel } from './model.js'
export type {
  Device, ModelConfig, Metrics, EvaluateOptions, SupportSet, Classification, CreateModelOptions, ModelTrainOptions
} from './model.js'
export type { TrainOptions, TrainData, EpochMetrics, ProgressEvent, BatchEvent, EpochEvent, FileEvent } from './train.js'
export type { ImageInput } from './inputs.js'
