// Option resolution: what a caller gives, checked against the contract, with the defaults filled
// in, in the addon's wire types. Also what a checkpoint recorded, and how the data is found
// again. No native call and no training happens here.
import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'

import type { NativeModelConfig } from './binding.js'
import {
  DATA_SOURCES, MIN_INPUT_SIDE, defaults, downloadSettings, evaluationSettings, modelSettings, read, trainingSettings,
  type DataSource, type Device, type Resolved, type Setting, type Values
} from './contract.js'
import { SiameseTorchError } from './errors.js'
import { assertLabelledImages } from './datasets/arrays.js'
import { fashionMnist, mnist } from './datasets/catalog.js'
import { embedded } from './datasets/embedded.js'
import { findIdxFile, idx } from './datasets/idx.js'
import { imageFolder } from './datasets/image-folder.js'
import type { DataSplit, LabelledImages } from './datasets/types.js'
import type { ProgressEvent } from './progress.js'
import { integerIn, invalidArg, isPlainObject } from './validate.js'

/** The settings that build a model (see `modelSettings` in the contract). */
export type ModelSettings = Values<typeof modelSettings>
/** The settings of a training run (see `trainingSettings` in the contract). */
export type TrainingSettings = Values<typeof trainingSettings>
/** The settings of a run once resolved: `threads` stays undefined for LibTorch's own count. */
export type ResolvedTrainingSettings = Resolved<typeof trainingSettings>

/** Options of `createModel`: every model setting, each with its default. */
export type CreateModelOptions = Partial<ModelSettings>

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
}

/** Options of `train`: those of `model.train`, those that build its model, and `resume`. */
export interface TrainOptions extends ModelTrainOptions, Partial<Pick<ModelSettings, 'loss' | 'margin' | 'embeddingSize' | 'device'>> {
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
export const MODEL_TRAIN_OPTIONS = [...keysOf(trainingSettings), 'data', 'download', 'outDir', 'onProgress', 'signal'] as const
/** The options that build a model, which `train` accepts on top (with `resume`). */
export const MODEL_BUILDING_OPTIONS = ['loss', 'margin', 'embeddingSize'] as const
/** The options `train` accepts. */
export const TRAIN_OPTIONS = [...MODEL_TRAIN_OPTIONS, ...MODEL_BUILDING_OPTIONS, 'device', 'resume'] as const

/** A new model's configuration and how it is created, from `createModel`'s options. */
export interface ModelPlan {
  config: NativeModelConfig
  device: Device
  seed: number
  /** 0: LibTorch's default. */
  threads: number
}

export function resolveModelPlan (o: Record<string, unknown>): ModelPlan {
  const loss = read(modelSettings.loss, o['loss'], 'loss')
  const margin = read(modelSettings.margin, o['margin'], 'margin')
  if (o['margin'] !== undefined && loss === 'pair-ce') {
    throw invalidArg('margin', "no margin with loss 'pair-ce' (margins go with 'contrastive' and 'triplet')", o['margin'])
  }
  return {
    config: {
      width: read(modelSettings.width, o['width'], 'width'),
      height: read(modelSettings.height, o['height'], 'height'),
      embeddingSize: read(modelSettings.embeddingSize, o['embeddingSize'], 'embeddingSize'),
      mean: read(modelSettings.mean, o['mean'], 'mean'),
      std: read(modelSettings.std, o['std'], 'std'),
      loss,
      margin,
      // pair-ce decides at P(same) = 0.5; a distance model at half its margin until evaluated.
      threshold: loss === 'pair-ce' ? 0.5 : margin / 2
    },
    device: read(modelSettings.device, o['device'], 'device'),
    seed: read(modelSettings.seed, o['seed'], 'seed'),
    threads: read(modelSettings.threads, o['threads'], 'threads') ?? 0
  }
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
 * recorded, then to the contract's defaults. A recorded value that fails its check is the
 * checkpoint's fault (ERR_BAD_FILE), not the caller's.
 */
export function resolveTrainingSettings (o: Record<string, unknown>, checkpoint: Checkpoint | undefined): ResolvedTrainingSettings {
  const setting = <T, D extends T | undefined>(key: string, spec: Setting<T, D>): T | D => {
    const recorded = checkpoint?.options[key]
    if (o[key] !== undefined || checkpoint === undefined || recorded === undefined) return read(spec, o[key], key)
    try {
      return spec.check(recorded, key)
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      throw new SiameseTorchError(`${checkpoint.path}: its train_options metadata holds an unusable ${key} (${message})`,
        'ERR_BAD_FILE', { path: checkpoint.path, cause: err })
    }
  }
  const t = trainingSettings
  return {
    pairs: setting('pairs', t.pairs),
    mining: setting('mining', t.mining),
    optimizer: setting('optimizer', t.optimizer),
    lr: setting('lr', t.lr),
    weightDecay: setting('weightDecay', t.weightDecay),
    momentum: setting('momentum', t.momentum),
    epochs: setting('epochs', t.epochs),
    batchSize: setting('batchSize', t.batchSize),
    seed: setting('seed', t.seed),
    threads: setting('threads', t.threads),
    saveEvery: setting('saveEvery', t.saveEvery)
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

/**
 * A data source given by name or folder: a named set, a folder of the four IDX files, or a
 * folder of class folders of images (resized to `size`, the model's input).
 */
async function loadSource (source: string, download: boolean, size: { width: number, height: number } | undefined): Promise<DataSplit> {
  switch (source) {
    case 'embedded': return embedded()
    case 'mnist': return mnist({ download })
    case 'fashion-mnist': return fashionMnist({ download })
  }
  const dir = resolve(source)
  if (!existsSync(dir)) {
    throw invalidArg('data', `${DATA_SOURCES.map((s) => `'${s}'`).join(', ')}, an existing folder or { train, test }`, source)
  }
  if (!isFolder(dir)) throw new SiameseTorchError(`${dir} is not a folder`, 'ERR_BAD_FILE', { path: dir })
  if (findIdxFile(dir, 'trainImages') !== undefined) return idx(dir)
  return imageFolder(dir, size ?? {})
}

/**
 * The data of `data`: a named source, a folder, or a given pair of sets (checked). `size`: the
 * model's input size, to which the images of a folder of class folders are resized.
 */
export async function resolveData (data: unknown, download: boolean, size?: { width: number, height: number }): Promise<DataSplit> {
  if (typeof data === 'string' && data.length > 0) return loadSource(data, download, size)
  if (isPlainObject(data) && 'train' in data && 'test' in data) {
    const train = assertLabelledImages(data['train'], 'data.train')
    const test = assertLabelledImages(data['test'], 'data.test')
    if (train.width !== test.width || train.height !== test.height) {
      throw invalidArg('data.test', `${train.width}x${train.height} images, as data.train`, `${test.width}x${test.height} images`)
    }
    const source = typeof data['source'] === 'string' ? { source: data['source'] } : {}
    return { name: typeof data['name'] === 'string' ? data['name'] : 'custom', train, test, ...source }
  }
  throw invalidArg('data', `${DATA_SOURCES.map((s) => `'${s}'`).join(', ')}, a folder or { train, test }`, data)
}

/** Refuses data whose images are smaller than the tower takes, naming `data` rather than an option not given. */
export function assertModelSized (data: DataSplit): void {
  const { width, height } = data.train
  if (width < MIN_INPUT_SIDE || height < MIN_INPUT_SIDE) {
    throw invalidArg('data', `images of at least ${MIN_INPUT_SIDE}x${MIN_INPUT_SIDE} pixels (the smallest the tower takes; ` +
      'datasets.imageFolder resizes them with width and height)', `${width}x${height} images`)
  }
}

/** The data a run trains on: the given data; for a resume without data, the checkpoint's own. */
export async function resolveTrainingData (o: Record<string, unknown>, checkpoint: Checkpoint | undefined,
  size: { width: number, height: number }): Promise<DataSplit> {
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
  const { threads, ...rest } = settings
  return { ...rest, ...(threads === undefined ? {} : { threads }), data: data.source ?? null, dataName: data.name }
}
