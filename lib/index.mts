// The ES module entry point: the same objects as the CommonJS one (one addon, one error class).
export { version, SiameseTorchError, datasets, defaults, choices, train, createModel, loadModel, SiameseModel, serve, openGallery, galleryFingerprint, Gallery, TrainingFeed } from './index.js'
export type {
  VersionInfo, CudaDeviceInfo, LibtorchSource, ErrorCode, SiameseTorchErrorOptions,
  LabelledImages, DataSplit, ArraysInput, PixelArray, DownloadableOptions, DownloadProgress, IdxOptions,
  ImageFolderOptions, ImageFolderProgress, Triplets, Pairs, SamplingOptions, BatchOptions, Catalogue,
  OmniglotOptions, OmniglotCatalogue, OmniglotArchive, SplitClassesOptions,
  Loss, Mining, Optimizer, PairScheme, Tower, DataSource, Device, Fit, Channels, AugmentOptions, EpisodeScope, Precision, LrSchedule, WeightInit,
  Comparison, ModelConfig, Metrics, Verification, Retrieval, EpisodeMetrics, SupportSet, Classification, LoadModelOptions, ImageOptions, InitReport,
  CreateModelOptions, ModelTrainOptions, TrainOptions, TrainData, EvaluateOptions, ModelSettings, TrainingSettings, InitOptions,
  EpochMetrics, ProgressEvent, BatchEvent, EpochEvent, FileEvent, ImageInput, RawImage,
  TrainingResult, DistributedOptions, DistributedBackend, DistributedRun, ServeOptions, ServeLimits, ServeHandle,
  GalleryItem, GalleryMatch, GalleryClass, GalleryClassification, OpenGalleryOptions,
  TrainingState, TrainingFeedEvent
} from './index.js'
