import { resolve } from 'node:path'

import { binding, type NativeModel, type NativeModelConfig } from './binding.js'
import { SiameseTorchError, callSite, rethrowAtCallSite } from './errors.js'
import { assertLabelledImages, toNativeData } from './datasets/arrays.js'
import type { DataSplit, LabelledImages } from './datasets/types.js'
import { toPixels, type ImageInput } from './inputs.js'
import { integerIn, invalidArg, isPlainObject, nonEmptyString, optionsObject, seedOption } from './validate.js'
import { resolveData, trainModel, type EpochMetrics, type TrainOptions } from './train.js'

/** Where a model runs: `'auto'` picks CUDA when this LibTorch has it and a GPU is present. */
export type Device = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`

/** What a model was built and trained for. */
export interface ModelConfig {
  /** Input image width and height in pixels (images are resized to this). */
  width: number
  height: number
  /** Length of the embedding vectors. */
  embeddingSize: number
  /** Pixel normalisation: (x / 255 - mean) / std. */
  mean: number
  std: number
  /** The loss it was trained with; it decides how pairs are scored. */
  loss: 'pair-ce' | 'contrastive' | 'triplet'
  /** Margin of the contrastive and triplet losses. */
  margin: number
  /**
   * The decision threshold: on P(same) for pair-ce (0.5), on the embedding distance for the
   * distance losses (the best one found on the test pairs after the last epoch).
   */
  threshold: number
}

/** Pair metrics on fixed test pairs, with N-way one-shot accuracy. */
export interface Metrics {
  /** The model's own loss on the test triplets. */
  loss: number
  /** Share of pairs decided right (P(same) >= 0.5, or distance <= threshold). */
  accuracy: number
  /** ROC AUC of the pair scores. */
  auc: number
  /** Threshold of best accuracy (on P(same) for pair-ce, on the distance otherwise). */
  threshold: number
  /** Number of test pairs (half "same", half "different"). */
  pairs: number
  /** N of the N-way one-shot episodes; 0 when not measured. */
  oneShotWays: number
  /** Share of one-shot episodes classified right; null when not measured. */
  oneShotAccuracy: number | null
}

/** Options of `model.evaluate`. */
export interface EvaluateOptions {
  /** Seed of the fixed test pairs. Default 0 (the pairs training reports on). */
  testSeed?: number
  /** N of N-way one-shot; default: the number of classes, at most 10; 0 skips it. */
  ways?: number
  /** One-shot episodes. Default 1000. */
  episodes?: number
  /** Seed of the episodes. Default 0. */
  seed?: number
}

/** A support set for one-shot classification: labelled examples of each class. */
export interface SupportSet {
  images: readonly ImageInput[]
  /** A class name or number for each image. */
  labels: ReadonlyArray<string | number>
}

/** The verdict on one query image. */
export interface Classification {
  /** Index of the chosen class in `classes`. */
  label: number
  /** Name of the chosen class. */
  className: string
  /** Its score: the highest P(same) between the query and that class's examples. */
  probability: number
  /** The score of every class, in `classes` order. */
  scores: number[]
  /** The class names the labels index. */
  classes: string[]
}

function asList<T> (value: T | readonly T[]): readonly T[] {
  return Array.isArray(value) ? value : [value as T]
}

/**
 * A Siamese network: two towers with shared weights that turn images into embeddings, and a
 * head that says how likely two images show the same class. Created by `train`, `createModel`
 * or `loadModel`. Every method runs off the main thread.
 *
 * Reads during training: `predict`, `embed`, `evaluate` and `classify` may run while the model
 * trains; each sees the weights of the last completed optimiser step. Another `train`, and
 * `dispose`, are refused with `ERR_BUSY` while a job runs.
 */
export class SiameseModel {
  readonly #native: NativeModel
  #disposed = false
  // Calls in progress, counted from the call itself: a job spends its first steps in JavaScript
  // (decoding images, loading data) before the addon counts it, and dispose() in between must
  // be refused as it is once the native job runs.
  #pending = 0

  /** @internal Use `train`, `createModel` or `loadModel`. */
  constructor (native: NativeModel) {
    if (typeof (native as Partial<NativeModel> | null)?.predictPairs !== 'function') {
      throw new SiameseTorchError('Expected a model from train, createModel or loadModel: SiameseModel is not built with new', 'ERR_INVALID_ARG')
    }
    this.#native = native
  }

  #use (): NativeModel {
    if (this.#disposed) throw new SiameseTorchError('this model has been disposed', 'ERR_DISPOSED')
    return this.#native
  }

  /** Runs one call's work on the model, counted as in progress until it settles. */
  async #job<T> (work: (native: NativeModel) => Promise<T>): Promise<T> {
    const native = this.#use()
    this.#pending++
    try {
      return await work(native)
    } finally {
      this.#pending--
    }
  }

  /** What the model was built and trained for. */
  get config (): ModelConfig {
    return { ...this.#use().info().config }
  }

  /** Where it runs, e.g. `"cpu"` or `"cuda:0"`. */
  get device (): string {
    return this.#use().info().device
  }

  /** LibTorch threads its work uses (0: LibTorch's default, the physical cores). */
  get threads (): number {
    return this.#use().info().threads
  }

  /** Class names of the data it was trained on, when known. */
  get classes (): string[] | undefined {
    const text = this.#use().info().metadata['classes']
    if (text === undefined) return undefined
    try {
      const parsed: unknown = JSON.parse(text)
      return Array.isArray(parsed) && parsed.every((c) => typeof c === 'string') ? parsed : undefined
    } catch {
      return undefined
    }
  }

  /** Metadata stored with the model (training options, metrics, epoch), as strings. */
  get metadata (): Record<string, string> {
    return { ...this.#use().info().metadata }
  }

  /**
   * The probability that `a` and `b` show the same class; arrays give one probability per pair.
   *
   * @example
   * ```ts
   * const p = await model.predict('a.png', 'b.png')
   * const ps = await model.predict([img1, img2], [img3, img4])
   * ```
   */
  predict (a: ImageInput, b: ImageInput): Promise<number>
  predict (a: readonly ImageInput[], b: readonly ImageInput[]): Promise<number[]>
  async predict (a: ImageInput | readonly ImageInput[], b: ImageInput | readonly ImageInput[]): Promise<number | number[]> {
    const site = callSite()
    return this.#job(async (native) => {
      const many = Array.isArray(a)
      if (many !== Array.isArray(b)) throw invalidArg('b', many ? 'an array, as a is' : 'a single image, as a is', b)
      const left = asList(a)
      const right = asList(b)
      if (left.length === 0) throw invalidArg('a', 'at least one image', a)
      if (left.length !== right.length) throw invalidArg('b', `${left.length} images, as many as a`, b)
      const { width, height } = native.info().config
      const [l, r] = await Promise.all([toPixels(left, width, height, many ? 'a[]' : 'a'), toPixels(right, width, height, many ? 'b[]' : 'b')])
      const p = await rethrowAtCallSite(native.predictPairs(l, r, left.length), site)
      return many ? Array.from(p) : (p[0])
    })
  }

  /**
   * Embeddings of images: one `Float32Array` of `embeddingSize` values per image.
   *
   * @example
   * ```ts
   * const [e] = await model.embed('digit.png')
   * ```
   */
  async embed (images: ImageInput | readonly ImageInput[]): Promise<Float32Array[]> {
    const site = callSite()
    return this.#job(async (native) => {
      const list = asList(images)
      if (list.length === 0) throw invalidArg('images', 'at least one image', images)
      const { width, height, embeddingSize } = native.info().config
      const flat = await rethrowAtCallSite(native.embed(await toPixels(list, width, height, 'images'), list.length), site)
      return list.map((_, i) => flat.slice(i * embeddingSize, (i + 1) * embeddingSize))
    })
  }

  /**
   * Pair metrics on the fixed test pairs of `data` (its test split, for a data set) and N-way
   * one-shot accuracy. Default data: the embedded digits.
   *
   * @example
   * ```ts
   * const m = await model.evaluate(await datasets.fashionMnist({ root }), { ways: 5 })
   * console.log(m.accuracy, m.auc, m.oneShotAccuracy)
   * ```
   */
  async evaluate (data?: DataSplit | LabelledImages | 'embedded' | 'mnist' | 'fashion-mnist', options?: EvaluateOptions): Promise<Metrics> {
    const site = callSite()
    return this.#job(async (native) => {
      const o = optionsObject(options, 'options', ['testSeed', 'ways', 'episodes', 'seed'])
      let set: LabelledImages
      if (data === undefined || typeof data === 'string') {
        set = (await resolveData(data ?? 'embedded', false)).test
      } else if (isPlainObject(data) && 'test' in data && 'train' in data) {
        set = assertLabelledImages(data.test, 'data.test')
      } else {
        set = assertLabelledImages(data, 'data')
      }
      const { width, height } = native.info().config
      if (set.width !== width || set.height !== height) {
        throw invalidArg('data', `${width}x${height} images, the model's input size`, `${set.width}x${set.height} images`)
      }
      const ways = o['ways'] === undefined ? Math.min(10, set.classes.length) : integerIn(o['ways'], 'ways', 0, set.classes.length)
      if (ways === 1) throw invalidArg('ways', '0 (skip) or at least 2', ways)
      const result = await rethrowAtCallSite(native.evaluate(toNativeData(set), {
        testSeed: o['testSeed'] === undefined ? 0 : seedOption(o['testSeed'], 'testSeed'),
        ways,
        episodes: o['episodes'] === undefined ? 1000 : integerIn(o['episodes'], 'episodes', 1, 1_000_000),
        seed: o['seed'] === undefined ? 0 : seedOption(o['seed'], 'seed')
      }), site)
      return {
        loss: result.loss,
        accuracy: result.accuracy,
        auc: result.auc,
        threshold: result.threshold,
        pairs: result.pairs,
        oneShotWays: result.oneShotWays,
        oneShotAccuracy: result.oneShotAccuracy
      }
    })
  }

  /**
   * One-shot (or k-shot) classification: each query goes to the class whose examples in
   * `support` it is most likely to match.
   *
   * @example
   * ```ts
   * const support = { images: ['ref/cat.png', 'ref/dog.png'], labels: ['cat', 'dog'] }
   * const [verdict] = await model.classify('query.png', support)
   * console.log(verdict.className, verdict.probability)
   * ```
   */
  async classify (queries: ImageInput | readonly ImageInput[], support: LabelledImages | SupportSet): Promise<Classification[]> {
    const site = callSite()
    return this.#job(async (native) => {
      const list = asList(queries)
      if (list.length === 0) throw invalidArg('queries', 'at least one image', queries)
      const { width, height } = native.info().config
      let supportPixels: Uint8Array
      let supportLabels: Int32Array
      let classes: string[]
      if (isPlainObject(support) && 'count' in support) {
        const set = assertLabelledImages(support, 'support')
        if (set.width !== width || set.height !== height) {
          throw invalidArg('support', `${width}x${height} images, the model's input size`, `${set.width}x${set.height} images`)
        }
        supportPixels = set.images
        supportLabels = set.labels
        classes = [...set.classes]
      } else if (isPlainObject(support) && Array.isArray(support['images']) && Array.isArray(support['labels'])) {
        const images = support['images'] as unknown[]
        const labels = support['labels'] as unknown[]
        if (images.length === 0 || images.length !== labels.length) {
          throw invalidArg('support.labels', `one label for each of the ${images.length} support images`, labels)
        }
        classes = []
        supportLabels = new Int32Array(labels.length)
        Array.from(labels).forEach((label, i) => {
          if (typeof label !== 'string' && typeof label !== 'number') throw invalidArg(`support.labels[${i}]`, 'a class name or number', label)
          const name = String(label)
          let index = classes.indexOf(name)
          if (index < 0) index = classes.push(name) - 1
          supportLabels[i] = index
        })
        supportPixels = await toPixels(images, width, height, 'support.images[]')
      } else {
        throw invalidArg('support', 'a labelled image set or { images, labels }', support)
      }
      const queryPixels = await toPixels(list, width, height, 'queries')
      const scores = await rethrowAtCallSite(native.classScores(queryPixels, list.length, supportPixels,
        supportLabels.length, supportLabels, classes.length), site)
      return list.map((_, q) => {
        const row = Array.from(scores.subarray(q * classes.length, (q + 1) * classes.length))
        let best = 0
        for (let c = 1; c < row.length; c++) if ((row[c]) > (row[best])) best = c
        return { label: best, className: classes[best], probability: row[best], scores: row, classes }
      })
    })
  }

  /**
   * Trains this model further (or from scratch, for one from `createModel`). Same options as
   * `train`, less those that build the model. Refused with `ERR_BUSY` while it trains already.
   */
  async train (options: ModelTrainOptions = {}): Promise<{ history: EpochMetrics[] }> {
    const site = callSite()
    return this.#job(async (native) => {
      const history = await rethrowAtCallSite(trainModel(native, optionsObject(options, 'options', MODEL_TRAIN_OPTIONS), undefined), site)
      return { history }
    })
  }

  /**
   * Saves the model as safetensors, atomically (a complete new file or the old one, never a
   * mix). Tensor names are the reference PyTorch module's: `Net().load_state_dict(...)` loads it.
   *
   * @example
   * ```ts
   * await model.save('digits.safetensors')
   * const again = await loadModel('digits.safetensors')
   * ```
   */
  async save (path: string): Promise<void> {
    const site = callSite()
    return this.#job(async (native) => {
      const target = resolve(nonEmptyString(path, 'path'))
      await rethrowAtCallSite(native.save(target, {}), site)
    })
  }

  /**
   * Frees the model's memory now rather than at garbage collection. Refused with `ERR_BUSY`
   * while a job runs on it; any later call rejects with `ERR_DISPOSED`.
   */
  dispose (): void {
    if (this.#disposed) return
    if (this.#pending > 0) {
      throw new SiameseTorchError(`cannot dispose a model while a job runs on it (${this.#pending} call(s) in progress)`, 'ERR_BUSY')
    }
    this.#native.dispose()
    this.#disposed = true
  }

  /** @internal */
  get native (): NativeModel {
    return this.#use()
  }
}

/** Options of `model.train`: those of `train` less the ones that build a model. */
export type ModelTrainOptions = Omit<TrainOptions, 'embeddingSize' | 'device' | 'resume' | 'loss' | 'margin'>

const MODEL_TRAIN_OPTIONS = ['data', 'download', 'pairs', 'mining', 'optimizer', 'lr', 'weightDecay', 'momentum',
  'epochs', 'batchSize', 'seed', 'threads', 'outDir', 'saveEvery', 'onProgress', 'signal'] as const
const TRAIN_OPTIONS = [...MODEL_TRAIN_OPTIONS, 'loss', 'margin', 'embeddingSize', 'device', 'resume'] as const

/** Options of `createModel`. */
export interface CreateModelOptions {
  /** Input width and height (at least 24). Default 28. */
  width?: number
  height?: number
  /** Embedding size. Default 512 (the reference). */
  embeddingSize?: number
  loss?: ModelConfig['loss']
  /** Margin of the contrastive and triplet losses. Default 1. */
  margin?: number
  /** Pixel normalisation. Default MNIST's: mean 0.1307, std 0.3081. */
  mean?: number
  std?: number
  device?: Device
  /** Seed of the weight initialisation. Default 0. */
  seed?: number
  /** LibTorch threads for this model's work, training and inference. Default: LibTorch's. */
  threads?: number
}

const DEVICE = /^(auto|cpu|cuda(:\d{1,3})?)$/

export function deviceOption (value: unknown): Device {
  if (value === undefined) return 'auto'
  if (typeof value !== 'string' || !DEVICE.test(value)) throw invalidArg('device', "'auto', 'cpu', 'cuda' or 'cuda:N'", value)
  return value as Device
}

export const LOSSES = ['pair-ce', 'contrastive', 'triplet'] as const

export function modelConfigFrom (o: Record<string, unknown>): NativeModelConfig {
  const loss = o['loss'] ?? 'pair-ce'
  if (!LOSSES.includes(loss as ModelConfig['loss'])) throw invalidArg('loss', `one of ${LOSSES.join(', ')}`, loss)
  const number = (key: string, fallback: number, min: number, max: number): number => {
    const v = o[key] ?? fallback
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw invalidArg(key, `a number from ${min} to ${max}`, v)
    return v
  }
  return {
    width: o['width'] === undefined ? 28 : integerIn(o['width'], 'width', 24, 4096),
    height: o['height'] === undefined ? 28 : integerIn(o['height'], 'height', 24, 4096),
    embeddingSize: o['embeddingSize'] === undefined ? 512 : integerIn(o['embeddingSize'], 'embeddingSize', 1, 65536),
    mean: number('mean', 0.1307, -1e6, 1e6),
    std: number('std', 0.3081, 1e-9, 1e6),
    loss: loss as ModelConfig['loss'],
    margin: number('margin', 1, 1e-6, 1e6),
    threshold: loss === 'pair-ce' ? 0.5 : number('margin', 1, 1e-6, 1e6) / 2
  }
}

/**
 * A new, untrained model (the reference network, freshly initialised).
 *
 * @example
 * ```ts
 * const model = await createModel({ loss: 'contrastive', margin: 2 })
 * await model.train({ data: 'embedded', epochs: 2 })
 * ```
 */
export async function createModel (options?: CreateModelOptions): Promise<SiameseModel> {
  const site = callSite()
  const o = optionsObject(options, 'options', ['width', 'height', 'embeddingSize', 'loss', 'margin', 'mean', 'std', 'device', 'seed', 'threads'])
  const config = modelConfigFrom(o)
  const device = deviceOption(o['device'])
  const seed = o['seed'] === undefined ? 0 : seedOption(o['seed'], 'seed')
  const threads = o['threads'] === undefined ? 0 : integerIn(o['threads'], 'threads', 1, 1024)
  return new SiameseModel(await rethrowAtCallSite(binding().createModel(config, device, seed, threads), site))
}

/**
 * A model saved by `save` or by training (`model.safetensors`, or a checkpoint). Every header
 * field is checked before any data is read; a malformed file rejects with `ERR_BAD_FILE`.
 *
 * @example
 * ```ts
 * const model = await loadModel('out/model.safetensors', { device: 'cpu' })
 * ```
 */
export async function loadModel (path: string, options?: { device?: Device, threads?: number }): Promise<SiameseModel> {
  const site = callSite()
  const file = resolve(nonEmptyString(path, 'path'))
  const o = optionsObject(options, 'options', ['device', 'threads'])
  const device = deviceOption(o['device'])
  const threads = o['threads'] === undefined ? 0 : integerIn(o['threads'], 'threads', 1, 1024)
  const { model } = await rethrowAtCallSite(binding().loadModel(file, device, threads), site)
  return new SiameseModel(model)
}

/**
 * Trains a Siamese network natively, on its own thread: the promise settles when training ends,
 * while the event loop stays free. Defaults are the reference recipe (RECIPE.md) on the
 * embedded digits, with the balanced pair scheme.
 *
 * @example
 * ```ts
 * import { train } from 'siamese-torch'
 * const { model, history } = await train({ data: 'embedded', epochs: 2, onProgress: console.log })
 * console.log(history.at(-1)?.testAccuracy)
 * const pSame = await model.predict(imageA, imageB)
 * ```
 */
export async function train (options: TrainOptions = {}): Promise<{ model: SiameseModel, history: EpochMetrics[] }> {
  const site = callSite()
  const o = optionsObject(options, 'options', TRAIN_OPTIONS)
  if (o['resume'] !== undefined) {
    const path = resolve(nonEmptyString(o['resume'], 'resume'))
    const threads = o['threads'] === undefined ? 0 : integerIn(o['threads'], 'threads', 1, 1024)
    const { model: native, checkpoint } = await rethrowAtCallSite(binding().loadModel(path, deviceOption(o['device']), threads), site)
    if (!checkpoint) {
      native.dispose()
      throw new SiameseTorchError(`${path}: not a checkpoint (it has no optimizer state); train a loaded model with model.train`,
        'ERR_BAD_FILE', { path })
    }
    const model = new SiameseModel(native)
    const history = await rethrowAtCallSite(trainModel(native, o, path), site)
    return { model, history }
  }
  if (o['margin'] !== undefined && (o['loss'] ?? 'pair-ce') === 'pair-ce') {
    throw invalidArg('margin', "no margin with loss 'pair-ce' (margins go with 'contrastive' and 'triplet')", o['margin'])
  }
  const data = await rethrowAtCallSite(resolveData(o['data'] ?? 'embedded', o['download'] === true), site)
  const model = await createModel({
    width: data.train.width,
    height: data.train.height,
    ...(o['embeddingSize'] === undefined ? {} : { embeddingSize: o['embeddingSize'] as number }),
    ...(o['loss'] === undefined ? {} : { loss: o['loss'] as ModelConfig['loss'] }),
    ...(o['margin'] === undefined ? {} : { margin: o['margin'] as number }),
    device: deviceOption(o['device']),
    seed: o['seed'] === undefined ? 0 : seedOption(o['seed'], 'seed'),
    ...(o['threads'] === undefined ? {} : { threads: o['threads'] as number })
  })
  try {
    const history = await rethrowAtCallSite(trainModel(model.native, { ...o, data }, undefined), site)
    return { model, history }
  } catch (err) {
    // The caller never receives this model from a rejection, so free it. To keep a model after
    // an abort, use createModel() and model.train(): it stays usable with its last weights.
    model.dispose()
    throw err
  }
}
