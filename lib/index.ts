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
  ImageFolderOptions, ImageFolderProgress, Triplets, Pairs, SamplingOptions, BatchOptions, Catalogue,
  OmniglotOptions, OmniglotCatalogue, OmniglotArchive, SplitClassesOptions
} from './datasets/index.js'
export { defaults, choices } from './contract.js'
export type { Loss, Mining, Optimizer, PairScheme, Tower, DataSource, Device, Fit, Channels, AugmentOptions, EpisodeScope, Precision, LrSchedule, WeightInit } from './contract.js'
export { train, createModel, loadModel, SiameseModel } from './model.js'
export type { Comparison, ModelConfig, Metrics, Verification, Retrieval, EpisodeMetrics, SupportSet, Classification, LoadModelOptions, ImageOptions, InitReport } from './model.js'
export type {
  CreateModelOptions, ModelTrainOptions, TrainOptions, TrainData, EvaluateOptions, ModelSettings, TrainingSettings, InitOptions
} from './options.js'
export type { EpochMetrics, ProgressEvent, BatchEvent, EpochEvent, FileEvent } from './progress.js'
export type { TrainingResult } from './training.js'
export type { DistributedOptions, DistributedBackend, DistributedRun } from './distributed.js'
export { openGallery, galleryFingerprint, Gallery } from './gallery.js'
export type { GalleryItem, GalleryMatch, GalleryClass, GalleryClassification, OpenGalleryOptions } from './gallery.js'
export { serve } from './serve.js'
export type { ServeOptions, ServeLimits, ServeHandle } from './serve.js'
export { TrainingFeed } from './page.js'
export type { TrainingState, TrainingFeedEvent } from './page.js'
export type { ImageInput, RawImage } from './inputs.js'
