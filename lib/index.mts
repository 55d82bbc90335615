// The ES module entry point: the same objects as the CommonJS one (one addon, one error class).
export { version, SiameseTorchError, datasets, train, createModel, loadModel, SiameseModel } from './index.js'
export type {
  VersionInfo, CudaDeviceInfo, LibtorchSource, ErrorCode, SiameseTorchErrorOptions,
  LabelledImages, DataSplit, ArraysInput, PixelArray, DownloadableOptions, DownloadProgress, IdxOptions,
  ImageFolderOptions, PairScheme, Triplets, Pairs, SamplingOptions, BatchOptions, Catalogue,
  Device, ModelConfig, Metrics, EvaluateOptions, SupportSet, Classification, CreateModelOptions, ModelTrainOptions,
  TrainOptions, TrainData, EpochMetrics, ProgressEvent, BatchEvent, EpochEvent, FileEvent, ImageInput
} from './index.js'
