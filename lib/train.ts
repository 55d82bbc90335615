// Training options: checked here, then handed to the native trainer, which runs on its own thread.
import { resolve } from 'node:path'

import type { NativeEpochMetrics, NativeModel, NativeTrainingEvent } from './binding.js'
import { SiameseTorchError } from './errors.js'
import { assertLabelledImages, toNativeData } from './datasets/arrays.js'
import { fashionMnist, mnist } from './datasets/catalog.js'
import { embedded } from './datasets/embedded.js'
import type { DataSplit, LabelledImages } from './datasets/types.js'
import { functionOption, integerIn, invalidArg, isPlainObject, nonEmptyString, numberIn, seedOption } from './validate.js'

/** Metrics of one epoch, measured on the fixed test pairs after it. */
export interface EpochMetrics {
  /** 1-based. */
  epoch: number
  /** Mean training loss over the epoch's batches. */
  trainLoss: number
  /**
   * Training pairs decided right during the epoch, as each batch was trained: the head's verdict
   * for pair-ce; for the distance losses, a triplet whose positive is closer than its negative
   * counts as two right pairs (for mined batches: its hardest positive and negative).
   */
  trainAccuracy: number
  /** The loss on the test triplets. */
  testLoss: number
  /** Pair accuracy on the test pairs (P(same) >= 0.5; distance <= threshold for distance losses). */
  testAccuracy: number
  /** ROC AUC on the test pairs. */
  auc: number
  /** Best threshold on the test pairs (P(same) for pair-ce, distance otherwise). */
  threshold: number
  /** Wall time of the epoch, evaluation included. */
  seconds: number
  /** Labelled training pairs per second (each triplet is two pairs). */
  pairsPerSecond: number
}

/** A throttled report from inside an epoch (at most every 100 ms, and after the last batch). */
export interface BatchEvent {
  type: 'batch'
  epoch: number
  epochs: number
  batch: number
  batches: number
  /** Loss of this batch. */
  loss: number
  pairsPerSecond: number
  /** Seconds left in this epoch, at the current pace. */
  etaSeconds: number
}

/** Sent after each epoch. */
export interface EpochEvent extends EpochMetrics {
  type: 'epoch'
}

/** Sent after a file is written (atomically). */
export interface FileEvent {
  type: 'file'
  kind: 'checkpoint' | 'model'
  path: string
}

export type ProgressEvent = BatchEvent | EpochEvent | FileEvent

/** Where training data comes from: a named source, or a `{ train, test }` pair of sets. */
export type TrainData = 'embedded' | 'mnist' | 'fashion-mnist' | DataSplit | { train: LabelledImages, test: LabelledImages }

/** Options of `train`. Defaults are the reference recipe of RECIPE.md. */
export interface TrainOptions {
  /** Default `'embedded'` (the digits shipped with the package). */
  data?: TrainData
  /** With `'mnist'` or `'fashion-mnist'`: download missing files (verified). Default false. */
  download?: boolean
  /** Training pair scheme: `'balanced'` (default, fresh every epoch) or `'reference'`. */
  pairs?: 'reference' | 'balanced'
  /** `'pair-ce'` (default: the reference head and cross-entropy), `'contrastive'` or `'triplet'`. */
  loss?: 'pair-ce' | 'contrastive' | 'triplet'
  /** Margin of the contrastive and triplet losses. Default 1. */
  margin?: number
  /** Online mining for the triplet loss over class-balanced batches. Default `'none'`. */
  mining?: 'none' | 'batch-hard' | 'semi-hard'
  /** Default `'adam'`. */
  optimizer?: 'adam' | 'sgd'
  /** Learning rate. Default 0.001. */
  lr?: number
  /** L2 weight decay (added to the gradient, as PyTorch's Adam). Default 0.0001. */
  weightDecay?: number
  /** SGD momentum. Default 0.9. */
  momentum?: number
  /** Default 10. */
  epochs?: number
  /** Triplets (two labelled pairs each) per batch. Default 64. */
  batchSize?: number
  /** Seed of initialisation, pairs and order. Default 0. Same seed on CPU: same weights. */
  seed?: number
  /** LibTorch threads for training, and for the model's later inference. Default: LibTorch's (the physical cores). */
  threads?: number
  /** Default `'auto'`: CUDA when available. */
  device?: 'auto' | 'cpu' | 'cuda' | `cuda:${number}`
  /** Embedding size. Default 512. */
  embeddingSize?: number
  /** Folder for checkpoints and the final `model.safetensors`. Default: write nothing. */
  outDir?: string
  /** Checkpoint every this many epochs (into outDir). Default 2; 0 for none. */
  saveEvery?: number
  /** A checkpoint to continue from: its weights, optimiser state, epoch and options. */
  resume?: string
  /** Batch, epoch and file events. An exception it throws is reported, and training goes on. */
  onProgress?: (event: ProgressEvent) => void
  /** Stops training between two batches: the promise rejects with ABORT_ERR. */
  signal?: AbortSignal
}

/** The data of a named source or a given pair of sets, checked. */
export async function resolveData (data: unknown, download: boolean): Promise<DataSplit> {
  switch (data) {
    case 'embedded': return embedded()
    case 'mnist': return mnist({ download })
    case 'fashion-mnist': return fashionMnist({ download })
  }
  if (isPlainObject(data) && 'train' in data && 'test' in data) {
    const train = assertLabelledImages(data['train'], 'data.train')
    const test = assertLabelledImages(data['test'], 'data.test')
    if (train.width !== test.width || train.height !== test.height) {
      throw invalidArg('data.test', `${train.width}x${train.height} images, as data.train`, `${test.width}x${test.height} images`)
    }
    return { name: typeof data['name'] === 'string' ? data['name'] : 'custom', train, test }
  }
  throw invalidArg('data', "'embedded', 'mnist', 'fashion-mnist' or { train, test }", data)
}

function choice<T extends string> (value: unknown, name: string, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback
  if (!allowed.includes(value as T)) throw invalidArg(name, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, value)
  return value as T
}

let warnedAboutCallback = false

/**
 * Runs the native trainer on `native` with validated options. `resumeFrom` is the checkpoint
 * the model was loaded from: its epoch and stored options continue where it stopped.
 */
export async function trainModel (native: NativeModel, o: Record<string, unknown>, resumeFrom: string | undefined): Promise<EpochMetrics[]> {
  const info = native.info()
  let stored: Record<string, unknown> = {}
  let startEpoch = 0
  if (resumeFrom !== undefined) {
    let parsed: unknown
    try {
      parsed = JSON.parse(info.metadata['train_options'] ?? '{}')
    } catch {
      throw new SiameseTorchError(`${resumeFrom}: its train_options metadata is not JSON`, 'ERR_BAD_FILE', { path: resumeFrom })
    }
    if (!isPlainObject(parsed)) {
      throw new SiameseTorchError(`${resumeFrom}: its train_options metadata is not a JSON object`, 'ERR_BAD_FILE', { path: resumeFrom })
    }
    stored = parsed
    startEpoch = Number(info.metadata['epoch'] ?? '0')
    if (!Number.isInteger(startEpoch) || startEpoch < 0) {
      throw new SiameseTorchError(`${resumeFrom}: its epoch metadata is not a whole number`, 'ERR_BAD_FILE', { path: resumeFrom })
    }
  }
  // What the caller gives wins; a resumed run falls back to what the checkpoint recorded.
  const opt = (key: string): unknown => o[key] ?? stored[key]
  // A recorded option that fails its check is the checkpoint's fault, not the caller's.
  const checked = <T>(key: string, read: () => T): T => {
    try {
      return read()
    } catch (err) {
      if (resumeFrom !== undefined && o[key] === undefined && stored[key] !== undefined &&
          err instanceof SiameseTorchError && err.code === 'ERR_INVALID_ARG') {
        throw new SiameseTorchError(`${resumeFrom}: its train_options metadata holds an unusable ${key} (${err.message})`,
          'ERR_BAD_FILE', { path: resumeFrom, cause: err })
      }
      throw err
    }
  }

  if (o['loss'] !== undefined && resumeFrom === undefined && o['loss'] !== info.config.loss) {
    throw invalidArg('loss', `'${info.config.loss}', the loss this model was built for`, o['loss'])
  }
  const mining = checked('mining', () => choice(opt('mining'), 'mining', ['none', 'batch-hard', 'semi-hard'] as const, 'none'))
  if (mining !== 'none' && info.config.loss !== 'triplet') {
    throw invalidArg('mining', "'none' unless loss is 'triplet'", mining)
  }
  const optimizer = checked('optimizer', () => choice(opt('optimizer'), 'optimizer', ['adam', 'sgd'] as const, 'adam'))
  const epochs = checked('epochs', () => opt('epochs') === undefined ? 10 : integerIn(opt('epochs'), 'epochs', 1, 1_000_000))
  const config = {
    epochs,
    batchSize: checked('batchSize', () => opt('batchSize') === undefined ? 64 : integerIn(opt('batchSize'), 'batchSize', 1, 1 << 20)),
    seed: checked('seed', () => opt('seed') === undefined ? 0 : seedOption(opt('seed'), 'seed')),
    pairs: checked('pairs', () => choice(opt('pairs'), 'pairs', ['reference', 'balanced'] as const, 'balanced')),
    mining,
    optimizer,
    lr: checked('lr', () => opt('lr') === undefined ? 0.001 : numberIn(opt('lr'), 'lr', 1e-12, 100)),
    weightDecay: checked('weightDecay', () => opt('weightDecay') === undefined ? 0.0001 : numberIn(opt('weightDecay'), 'weightDecay', 0, 100)),
    momentum: checked('momentum', () => opt('momentum') === undefined ? 0.9 : numberIn(opt('momentum'), 'momentum', 0, 1)),
    saveEvery: checked('saveEvery', () => opt('saveEvery') === undefined ? 2 : integerIn(opt('saveEvery'), 'saveEvery', 0, 1_000_000)),
    outDir: o['outDir'] === undefined ? '' : resolve(nonEmptyString(o['outDir'], 'outDir')),
    threads: checked('threads', () => opt('threads') === undefined ? 0 : integerIn(opt('threads'), 'threads', 1, 1024)),
    testSeed: 0,
    startEpoch
  }
  if (startEpoch >= epochs) {
    throw invalidArg('epochs', `more than the ${startEpoch} epochs the checkpoint has done`, epochs)
  }
  const onProgress = o['onProgress'] === undefined ? undefined : functionOption<(e: ProgressEvent) => void>(o['onProgress'], 'onProgress')
  const signal = o['signal']
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArg('signal', 'an AbortSignal', signal)
  if (signal?.aborted) throw new SiameseTorchError('training was aborted before it started', 'ABORT_ERR', { cause: signal.reason })

  const dataOption = opt('data') ?? 'embedded'
  const data = await resolveData(dataOption, o['download'] === true)
  const { width, height } = info.config
  if (data.train.width !== width || data.train.height !== height) {
    throw invalidArg('data', `${width}x${height} images, the model's input size`, `${data.train.width}x${data.train.height} images`)
  }
  const classes = data.train.classes.length >= data.test.classes.length ? data.train.classes : data.test.classes

  // Recorded in every file, so that a checkpoint can resume with the same settings.
  const recorded = {
    data: typeof dataOption === 'string' ? dataOption : data.name,
    pairs: config.pairs,
    mining,
    optimizer,
    lr: config.lr,
    weightDecay: config.weightDecay,
    momentum: config.momentum,
    epochs,
    batchSize: config.batchSize,
    seed: config.seed,
    saveEvery: config.saveEvery,
    ...(config.threads > 0 ? { threads: config.threads } : {})
  }
  native.setMetadata({ classes: JSON.stringify(classes), train_options: JSON.stringify(recorded) })

  const deliver = (event: NativeTrainingEvent): void => {
    if (!onProgress) return
    try {
      onProgress(event)
    } catch (err) {
      if (!warnedAboutCallback) {
        warnedAboutCallback = true
        process.emitWarning(`siamese-torch: onProgress threw (training goes on): ${err instanceof Error ? err.message : String(err)}`)
      }
    }
  }
  const stop = (): void => native.stopTraining()
  signal?.addEventListener('abort', stop, { once: true })
  try {
    const history: NativeEpochMetrics[] = await native.train(toNativeData(data.train, classes.length), toNativeData(data.test, classes.length), config, deliver, resumeFrom)
    native.setMetadata({ metrics: JSON.stringify(history.at(-1) ?? {}) })
    return history
  } finally {
    signal?.removeEventListener('abort', stop)
  }
}
