// Option resolution: what a caller gives, checked against the contract, with the defaults filled
// in, in the addon's wire types. Also what a checkpoint recorded, and how the data is found
// again. No native call and no training happens here.
import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'

import type { NativeAugment, NativeModelConfig } from './binding.js'
import type { DistributedOptions } from './distributed.js'
import {
  AUGMENT_PRESET, DATA_SOURCES, MAX_REFERENCE_PARAMETERS, choices, MIN_INPUT_SIDE, MIN_TOWER_SIDE, defaults, downloadSettings, evaluationSettings,
  imageFolderSettings, modelSettings, read, recipeTrainingDefaults, trainingSettings,
  type AugmentOptions, type Channels, type DataSource, type Device, type Fit, type Precision, type Resolved, type Mining, type PairScheme, type Setting, type Tower, type Values, type WeightInit
} from './contract.js'
import { SiameseTorchError } from './errors.js'
import { assertLabelledImages } from './datasets/arrays.js'
import { fashionMnist, mnist } from './datasets/catalog.js'
import { embedded } from './datasets/embedded.js'
import { findIdxFile, idx } from './datasets/idx.js'
import { imageFolder } from './datasets/image-folder.js'
import { omniglot } from './datasets/omniglot.js'
import type { DataSplit, LabelledImages } from './datasets/types.js'
import type { ProgressEvent } from './progress.js'
import { integerIn, invalidArg, isPlainObject } from './validate.js'

/** The settings that build a model (see `modelSettings` in the contract). */
export type ModelSettings = Values<typeof modelSettings>
/** The settings of a training run (see `trainingSettings` in the contract). */
export type TrainingSettings = Values<typeof trainingSettings>
/** The settings of a run once resolved: `threads` stays undefined for the default count (`version().threads`). */
export type ResolvedTrainingSettings = Resolved<typeof trainingSettings>

/**
 * Weights trained elsewhere to start the tower from: a safetensors file (e.g. a torchvision
 * ResNet-18 state dict), its tensors matched by name as PyTorch's `load_state_dict(strict=False)`
 * does; `prefix` is put before our names (e.g. `'backbone.'` or `'module.'`).
 */
export interface InitOptions {
  path: string
  /** Default `''`. */
  prefix?: string
}

/** Options of `createModel`: every model setting, each with its default, and `init`. */
export interface CreateModelOptions extends Partial<ModelSettings> {
  /**
   * Start the tower from weights trained in PyTorch (a `.safetensors` path, or `{ path, prefix }`).
   * What was loaded, missing, unexpected or skipped is in `model.initReport`; a tower tensor of
   * another shape is refused with `ERR_BAD_FILE` naming it.
   */
  init?: string | InitOptions
}

/**
 * Where training data comes from: a named set (`'embedded'`, `'mnist'`, `'fashion-mnist'`), a
 * folder (of the four IDX files, or of class folders of images, resized to the model's input),
 * a data set from `datasets`, or `{ train, test }` sets built in memory.
 */
export type TrainData = DataSource | (string & Record<never, never>) | DataSplit | { train: LabelledImages, test: LabelledImages }

/** Options of `model.train`: the training settings, and where data and files come and go. */
export interface ModelTrainOptions extends Partial<TrainingSettings> {
  /** Default `'embedded'` (the digits shipped with the package). */
  data?: TrainData
  /** With `'mnist'` or `'fashion-mnist'`: download missing files (verified). Default false. */
  download?: boolean
  /**
   * Folder for checkpoints and the final `model.safetensors`, made if missing and checked for
   * writing before the first batch. Default: write nothing.
   */
  outDir?: string
  /** Batch, epoch and file events. An exception it throws is reported, and training goes on. */
  onProgress?: (event: ProgressEvent) => void
  /** Stops training between two batches: the promise rejects with ABORT_ERR (its `cause`: the signal's reason). */
  signal?: AbortSignal
  /**
   * Train as one rank of a data-parallel run over processes and hosts (c10d, Gloo on the CPU):
   * `true` reads who is who from the environment (`RANK`, `WORLD_SIZE`, `MASTER_ADDR`,
   * `MASTER_PORT`, as torchrun and Kubernetes' PyTorchJob set them), an object says it (see
   * `DistributedOptions`). Every rank runs the same options on the same data; `batchSize` is the
   * global batch, shared by the ranks; the run ends with the same weights as one process, up to
   * float rounding. Only rank 0 reports progress and writes `outDir`. A rank that dies or hangs
   * makes the others fail with `ERR_DISTRIBUTED` within `timeoutMs`. See docs/distributed.md.
   * Default: this process alone.
   */
  distributed?: boolean | DistributedOptions
  /**
   * With a folder of images as `data`: how images of another shape are brought to the model's
   * size (default `'fill'`, stretched). Recorded, so that a resume reads them the same way.
   */
  fit?: Fit
}

/** Options of `train`: those of `model.train`, those that build its model, and `resume`. */
export interface TrainOptions extends ModelTrainOptions,
  Partial<Pick<ModelSettings, 'tower' | 'width' | 'height' | 'channels' | 'mean' | 'std' | 'loss' | 'margin' | 'embeddingSize' | 'device' | 'weightInit'>> {
  /**
   * Start the tower from weights trained in PyTorch (see `createModel`). With `freezeTower`, only
   * what is on top of the frozen stages trains.
   */
  init?: string | InitOptions
  /**
   * A checkpoint to continue from: its weights, optimiser state, epoch, options and data (those
   * you pass win; the data must be the same). With the same seed on the CPU it ends with the same
   * weights as an uninterrupted run.
   */
  resume?: string
}

/** Options of `model.evaluate` (see `evaluationSettings` in the contract). */
export type EvaluateOptions = Partial<Values<typeof evaluationSettings>>

const keysOf = <T extends object>(table: T): Array<keyof T & string> => Object.keys(table) as Array<keyof T & string>

/** The options `model.train` accepts. */
export const MODEL_TRAIN_OPTIONS = [...keysOf(trainingSettings), 'data', 'download', 'outDir', 'onProgress', 'signal', 'fit', 'distributed'] as const
/** The options that build a model, which `train` accepts on top (with `resume`). */
export const MODEL_BUILDING_OPTIONS = ['tower', 'width', 'height', 'channels', 'mean', 'std', 'loss', 'margin', 'embeddingSize', 'init', 'weightInit'] as const
/** The options `createModel` accepts. */
export const CREATE_MODEL_OPTIONS = [...keysOf(modelSettings), 'init'] as const
/** The options `train` accepts. */
export const TRAIN_OPTIONS = [...MODEL_TRAIN_OPTIONS, ...MODEL_BUILDING_OPTIONS, 'device', 'resume'] as const

/** A new model's configuration and how it is created, from `createModel`'s options. */
export interface ModelPlan {
  config: NativeModelConfig
  device: Device
  seed: number
  /** 0: the default count (`version().threads`). */
  threads: number
  precision: Precision
  init: { path: string, prefix: string } | undefined
  weightInit: WeightInit
}

/** What the data decides of a new model when the options leave it: its size, channels and normalisation. */
export interface DataShape {
  width: number
  height: number
  channels: Channels
  stats?: { readonly mean: readonly number[], readonly std: readonly number[] } | undefined
}

/** The smallest input side of `tower`. */
export function minInputSide (tower: Tower): number {
  return tower === 'reference' ? MIN_INPUT_SIDE : MIN_TOWER_SIDE
}

/** The stages `freezeTower` can freeze in `tower` (native/core/network.h). */
export function towerStages (tower: Tower): number {
  return { reference: 3, conv4: 4, resnet18: 5 }[tower]
}

/** Parameters of the reference tower and head: its first linear layer grows with the image. */
export function referenceParameters (width: number, height: number, channels: number, embeddingSize: number): number {
  const side = (n: number): number => Math.floor((n - 6) / 2) - 8
  const convs = 64 * channels * 49 + 64 + 128 * 64 * 25 + 128 + 256 * 128 * 25 + 256
  return convs + (256 * side(width) * side(height) + 1) * embeddingSize + 2 * embeddingSize + 2
}

/** A per-channel setting as one value a channel. */
function perChannel (value: number | readonly number[], channels: Channels, name: string): number[] {
  if (typeof value === 'number') return new Array<number>(channels).fill(value)
  if (value.length === 1) return new Array<number>(channels).fill(value[0])
  if (value.length !== channels) throw invalidArg(name, `one number, or ${channels} (one a channel)`, value)
  return [...value]
}

function resolveInit (value: unknown): { path: string, prefix: string } | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'string' && value.length > 0) return { path: resolve(value), prefix: '' }
  if (isPlainObject(value) && typeof value['path'] === 'string' && value['path'].length > 0 &&
    (value['prefix'] === undefined || typeof value['prefix'] === 'string') &&
    Object.keys(value).every((k) => k === 'path' || k === 'prefix')) {
    return { path: resolve(value['path']), prefix: (value['prefix']) ?? '' }
  }
  throw invalidArg('init', 'a .safetensors path or { path, prefix }', value)
}

/**
 * Whether a run with these settings trains the reference recipe: the recipe's pairs, or mined
 * batches (which draw no pairs). Such a run takes the recipe's values for whatever it is not given
 * (`recipeTrainingDefaults`, and `weightInit: 'torch'` for the model `train` builds for it).
 */
export function trainsTheRecipe (settings: { pairs: PairScheme, mining: Mining }): boolean {
  return settings.pairs === 'reference' || settings.mining !== 'none'
}

/**
 * A new model from options; `data` decides what the options leave (size, channels, and the
 * normalisation of an image folder). The reference tower's parameters grow with the image: above
 * MAX_REFERENCE_PARAMETERS it is refused, above a fifth of that a warning says so. `recipe`: the
 * model is for the reference recipe (`train` with `pairs: 'reference'` or mining), whose weights
 * are drawn as they always were (`weightInit: 'torch'` unless given).
 */
export function resolveModelPlan (o: Record<string, unknown>, data?: DataShape, recipe = false): ModelPlan {
  const loss = read(modelSettings.loss, o['loss'], 'loss')
  const margin = read(modelSettings.margin, o['margin'], 'margin')
  if (o['margin'] !== undefined && loss === 'pair-ce') {
    throw invalidArg('margin', "no margin with loss 'pair-ce' (margins go with 'contrastive' and 'triplet')", o['margin'])
  }
  const tower = read(modelSettings.tower, o['tower'], 'tower')
  const width = read(modelSettings.width, o['width'], 'width')
  const height = read(modelSettings.height, o['height'], 'height')
  if (data !== undefined && ((o['width'] !== undefined && width !== data.width) || (o['height'] !== undefined && height !== data.height))) {
    throw invalidArg(o['width'] !== undefined && width !== data.width ? 'width' : 'height',
      `the data's size, ${data.width}x${data.height} (a folder of images is read at the size given; other data has its own)`,
      `${width}x${height}`)
  }
  const given = read(modelSettings.channels, o['channels'], 'channels')
  if (data !== undefined && given !== undefined && given !== data.channels) {
    throw invalidArg('channels', `${data.channels}, as the data's images have (or read the data with channels: ${given})`, given)
  }
  const channels = data?.channels ?? given ?? 1
  const least = minInputSide(tower)
  for (const [name, side] of [['width', width], ['height', height]] as const) {
    if (side < least) {
      throw invalidArg(name, `at least ${least} pixels (the smallest the ${tower} tower takes` +
        `${tower === 'reference' ? "; tower 'conv4' and 'resnet18' take 16" : ''})`, side)
    }
  }
  const embeddingSize = read(modelSettings.embeddingSize, o['embeddingSize'], 'embeddingSize')
  if (tower === 'reference') checkReferenceSize(data?.width ?? width, data?.height ?? height, channels, embeddingSize)
  // An image folder's own statistics, for whichever of mean and std is not given.
  const stats = data?.stats
  const mean = o['mean'] === undefined && stats !== undefined ? modelSettings.mean.check([...stats.mean], 'data.stats.mean') : read(modelSettings.mean, o['mean'], 'mean')
  const std = o['std'] === undefined && stats !== undefined ? modelSettings.std.check([...stats.std], 'data.stats.std') : read(modelSettings.std, o['std'], 'std')
  return {
    config: {
      tower,
      width: data?.width ?? width,
      height: data?.height ?? height,
      channels,
      embeddingSize,
      mean: perChannel(mean, channels, 'mean'),
      std: perChannel(std, channels, 'std'),
      loss,
      margin,
      // pair-ce decides at P(same) = 0.5; a distance model at half its margin until evaluated.
      threshold: loss === 'pair-ce' ? 0.5 : margin / 2
    },
    device: read(modelSettings.device, o['device'], 'device'),
    seed: read(modelSettings.seed, o['seed'], 'seed'),
    threads: read(modelSettings.threads, o['threads'], 'threads') ?? 0,
    precision: read(modelSettings.precision, o['precision'], 'precision'),
    init: resolveInit(o['init']),
    // Xavier measured better for the balanced scheme on the reference tower (docs/performance.md,
    // "Accuracy per minute"); the recipe and the other towers keep their own.
    weightInit: read(modelSettings.weightInit, o['weightInit'], 'weightInit') ?? (tower === 'reference' && !recipe ? 'xavier' : 'torch')
  }
}

/** Checks each model option on its own, before the data that decides the rest (channels, size) is read. */
export function checkModelOptions (o: Record<string, unknown>): void {
  for (const [key, setting] of Object.entries(modelSettings) as Array<[string, Setting<unknown>]>) read(setting, o[key], key)
  resolveInit(o['init'])
}

let warnedAboutSize = false

function checkReferenceSize (width: number, height: number, channels: number, embeddingSize: number): void {
  const parameters = referenceParameters(width, height, channels, embeddingSize)
  const millions = (parameters / 1e6).toFixed(1)
  const what = `the reference tower at ${width}x${height} has ${millions} million parameters ` +
    `(${Math.round(parameters * 4 / 1e6)} MB a model file, 3 times that a checkpoint): its first linear layer grows with the image`
  if (parameters > MAX_REFERENCE_PARAMETERS) {
    throw invalidArg('tower', `'conv4' or 'resnet18' for images this large: ${what}, past the limit of ` +
      `${MAX_REFERENCE_PARAMETERS / 1e6} million`, 'reference')
  }
  if (parameters > MAX_REFERENCE_PARAMETERS / 5 && !warnedAboutSize) {
    warnedAboutSize = true
    process.emitWarning(`siamese-torch: ${what}; tower 'conv4' or 'resnet18' stay small at any size`, { code: 'SIAMESE_TORCH_LARGE_TOWER' })
  }
}

/** The native form of `augment`: every field at its identity when off. */
export function nativeAugment (value: boolean | AugmentOptions): NativeAugment {
  const a: AugmentOptions = value === true ? AUGMENT_PRESET : value === false ? {} : value
  const crop = typeof a.crop === 'number' ? [a.crop, 1] : a.crop ?? [1, 1]
  return {
    cropScaleMin: crop[0],
    cropScaleMax: crop[1],
    ratioMin: a.ratio?.[0] ?? 3 / 4,
    ratioMax: a.ratio?.[1] ?? 4 / 3,
    flip: a.flip === true,
    rotate: a.rotate ?? 0,
    translate: a.translate ?? 0,
    scaleMin: a.scale?.[0] ?? 1,
    scaleMax: a.scale?.[1] ?? 1,
    shear: a.shear ?? 0,
    brightness: a.brightness ?? 0,
    contrast: a.contrast ?? 0
  }
}

/** The stages `freezeTower` freezes in `tower`. */
export function frozenStages (value: boolean | number, tower: Tower): number {
  const stages = towerStages(tower)
  if (value === true) return stages
  if (value === false) return 0
  if (value > stages) throw invalidArg('freezeTower', `true, false or 0 to ${stages} (the ${tower} tower's stages)`, value)
  return value
}

/** What a checkpoint recorded about the run that wrote it. */
export interface Checkpoint {
  /** The file. */
  path: string
  /** The epochs it has done. */
  epoch: number
  /** The training settings it recorded (unchecked: each is checked when used). */
  options: Record<string, unknown>
  /** How to read its data again: a named set or a folder; undefined for sets built in memory. */
  dataSource: string | undefined
  /** What its data was called (`DataSplit.name`). */
  dataName: string
  /** The fingerprint of its data ('' when it has none: files of siamese-torch 0.1). */
  dataFingerprint: string
}

/** Reads what a checkpoint's metadata recorded; a malformed record is the file's fault (ERR_BAD_FILE). */
export function readCheckpoint (path: string, metadata: Record<string, string>): Checkpoint {
  const bad = (what: string): SiameseTorchError => new SiameseTorchError(`${path}: ${what}`, 'ERR_BAD_FILE', { path })
  let options: unknown
  try {
    options = JSON.parse(metadata['train_options'] ?? '{}')
  } catch {
    throw bad('its train_options metadata is not JSON')
  }
  if (!isPlainObject(options)) throw bad('its train_options metadata is not a JSON object')
  const epoch = Number(metadata['epoch'] ?? '0')
  if (!Number.isInteger(epoch) || epoch < 0) throw bad('its epoch metadata is not a whole number')
  const data = options['data']
  const name = options['dataName']
  // siamese-torch 0.1 recorded the source or the set's name under `data`, and no fingerprint.
  const source = typeof data === 'string' && ((DATA_SOURCES as readonly string[]).includes(data) || isFolder(data)) ? data : undefined
  return {
    path,
    epoch,
    options,
    dataSource: source,
    dataName: typeof name === 'string' ? name : typeof data === 'string' ? data : 'a data set built in memory',
    dataFingerprint: metadata['data_fingerprint'] ?? ''
  }
}

/**
 * The training settings: those given win; a resumed run falls back to what its checkpoint
 * recorded, then to the contract's defaults: for the reference scheme and mined batches, and for
 * a checkpoint that did not record a setting of the recipe's (written before the setting
 * existed), the recipe's (`recipeTrainingDefaults`). A recorded value that fails its check is the
 * checkpoint's fault (ERR_BAD_FILE), not the caller's.
 */
export function resolveTrainingSettings (o: Record<string, unknown>, checkpoint: Checkpoint | undefined): ResolvedTrainingSettings {
  let recipe = false
  const setting = <T, D extends T | undefined>(key: string, spec: Setting<T, D>): T | D => {
    const recorded = checkpoint?.options[key]
    if (o[key] !== undefined || checkpoint === undefined || recorded === undefined) {
      const fallback = (recipeTrainingDefaults as Record<string, unknown>)[key] as T | undefined
      if (o[key] === undefined && fallback !== undefined && (recipe || checkpoint !== undefined)) return fallback
      return read(spec, o[key], key)
    }
    try {
      return spec.check(recorded, key)
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      throw new SiameseTorchError(`${checkpoint.path}: its train_options metadata holds an unusable ${key} (${message})`,
        'ERR_BAD_FILE', { path: checkpoint.path, cause: err })
    }
  }
  const t = trainingSettings
  const pairs = setting('pairs', t.pairs)
  const mining = setting('mining', t.mining)
  recipe = trainsTheRecipe({ pairs, mining })
  return {
    pairs,
    mining,
    optimizer: setting('optimizer', t.optimizer),
    lr: setting('lr', t.lr),
    lrSchedule: setting('lrSchedule', t.lrSchedule),
    warmup: setting('warmup', t.warmup),
    weightDecay: setting('weightDecay', t.weightDecay),
    momentum: setting('momentum', t.momentum),
    epochs: setting('epochs', t.epochs),
    batchSize: setting('batchSize', t.batchSize),
    seed: setting('seed', t.seed),
    threads: setting('threads', t.threads),
    precision: setting('precision', t.precision),
    saveEvery: setting('saveEvery', t.saveEvery),
    // How this run computes, not what it trains: never taken from a checkpoint.
    cudaGraph: read(t.cudaGraph, o['cudaGraph'], 'cudaGraph'),
    freezeTower: setting('freezeTower', t.freezeTower),
    augment: setting('augment', t.augment)
  }
}

/** The N of N-way one-shot for a set of `classes` classes: given, or the classes (at most 10). */
export function resolveWays (value: unknown, classes: number): number {
  const ways = read(evaluationSettings.ways, value, 'ways') ?? Math.min(10, classes)
  integerIn(ways, 'ways', 0, classes)
  if (ways === 1) throw invalidArg('ways', '0 (skip) or at least 2', ways)
  return ways
}

function isFolder (path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

/** How a folder of class folders of images is read: to a model's size, channels (undefined: from the images) and fit. */
export interface FolderTarget {
  width: number
  height: number
  channels?: Channels | undefined
  fit?: Fit | undefined
}

/**
 * A data source given by name or folder: a named set, a folder of the four IDX files, or a
 * folder of class folders of images (read to `size`, the model's input).
 */
async function loadSource (source: string, download: boolean, size: FolderTarget | undefined): Promise<DataSplit> {
  switch (source) {
    case 'embedded': return embedded()
    case 'mnist': return mnist({ download })
    case 'fashion-mnist': return fashionMnist({ download })
    case 'omniglot': return omniglot({ download })
  }
  const dir = resolve(source)
  if (!existsSync(dir)) {
    throw invalidArg('data', `${DATA_SOURCES.map((s) => `'${s}'`).join(', ')}, an existing folder or { train, test }`, source)
  }
  if (!isFolder(dir)) throw new SiameseTorchError(`${dir} is not a folder`, 'ERR_BAD_FILE', { path: dir })
  if (findIdxFile(dir, 'trainImages') !== undefined) return idx(dir)
  if (size === undefined) return imageFolder(dir)
  return imageFolder(dir, {
    width: size.width,
    height: size.height,
    ...(size.channels === undefined ? {} : { channels: size.channels }),
    ...(size.fit === undefined ? {} : { fit: size.fit })
  })
}

/**
 * The data of `data`: a named source, a folder, or a given pair of sets (checked). `size`: the
 * model's input size, to which the images of a folder of class folders are resized.
 */
export async function resolveData (data: unknown, download: boolean, size?: FolderTarget): Promise<DataSplit> {
  if (typeof data === 'string' && data.length > 0) return loadSource(data, download, size)
  if (isPlainObject(data) && 'train' in data && 'test' in data) {
    const train = assertLabelledImages(data['train'], 'data.train')
    const test = assertLabelledImages(data['test'], 'data.test')
    if (train.width !== test.width || train.height !== test.height || (train.channels ?? 1) !== (test.channels ?? 1)) {
      throw invalidArg('data.test', `${shapeName(train)} images, as data.train`, `${shapeName(test)} images`)
    }
    const source = typeof data['source'] === 'string' ? { source: data['source'] } : {}
    const stats = isPlainObject(data['stats']) ? { stats: data['stats'] as unknown as NonNullable<DataSplit['stats']> } : {}
    return { name: typeof data['name'] === 'string' ? data['name'] : 'custom', train, test, ...source, ...stats }
  }
  throw invalidArg('data', `${DATA_SOURCES.map((s) => `'${s}'`).join(', ')}, a folder or { train, test }`, data)
}

/** "WxH" or "WxHx3". */
export function shapeName (set: { width: number, height: number, channels?: number | undefined }): string {
  return `${set.width}x${set.height}${(set.channels ?? 1) === 1 ? '' : `x${set.channels ?? 1}`}`
}

/** Refuses data whose images are smaller than `tower` takes, naming `data` rather than an option not given. */
export function assertModelSized (data: DataSplit, tower: Tower): void {
  const { width, height } = data.train
  const least = minInputSide(tower)
  if (width < least || height < least) {
    throw invalidArg('data', `images of at least ${least}x${least} pixels (the smallest the ${tower} tower takes; ` +
      'datasets.imageFolder resizes them with width and height)', `${width}x${height} images`)
  }
}

/**
 * The fit of a run: given, else what the model's earlier training recorded (`recorded`: a
 * checkpoint's or a model's train_options), else the default.
 */
export function resolveFit (o: Record<string, unknown>, recorded: Record<string, unknown> | undefined): Fit {
  const fit = recorded?.['fit']
  return read(imageFolderSettings.fit, o['fit'] ?? ((choices.fit as readonly unknown[]).includes(fit) ? fit : undefined), 'fit')
}

/** A model's train_options metadata, or undefined when it has none or it cannot be read. */
export function trainOptionsOf (metadata: Record<string, string>): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(metadata['train_options'] ?? 'null')
    return isPlainObject(parsed) ? parsed : undefined
  } catch {
    return undefined
  }
}

/** The data a run trains on: the given data; for a resume without data, the checkpoint's own. */
export async function resolveTrainingData (o: Record<string, unknown>, checkpoint: Checkpoint | undefined,
  size: FolderTarget): Promise<DataSplit> {
  const download = read(downloadSettings.download, o['download'], 'download')
  if (o['data'] !== undefined || checkpoint === undefined) return resolveData(o['data'] ?? defaults.data, download, size)
  if (checkpoint.dataSource === undefined) {
    throw invalidArg('data', `the data ${checkpoint.path} was trained on (${checkpoint.dataName}, which is not a named set or a folder ` +
      'that can be read again): pass the same sets as data to resume', undefined)
  }
  return resolveData(checkpoint.dataSource, download, size)
}

/** What every file of a run records about it, so that a checkpoint resumes with the same settings and data. */
export function recordedOptions (settings: ResolvedTrainingSettings, data: DataSplit): Record<string, unknown> {
  const { threads, cudaGraph: _cudaGraph, ...rest } = settings
  return {
    ...rest,
    ...(threads === undefined ? {} : { threads }),
    ...(data.train.fit === undefined ? {} : { fit: data.train.fit }),
    data: data.source ?? null,
    dataName: data.name
  }
}
