// A Siamese model as users hold it (SiameseModel), and the three ways to get one: train,
// createModel and loadModel. Every method checks its arguments here and runs off the main thread.
import { resolve } from 'node:path'

import { binding, type NativeBatchStats, type NativeIndex, type NativeModel, type NativeNeighbours } from './binding.js'
import {
  defaults, downloadSettings, evaluationSettings, modelSettings, read, trainingSettings,
  type Channels, type EpisodeScope, type Fit, type Loss, type Precision, type Tower
} from './contract.js'
import { assertLabelledImages, toNativeData } from './datasets/arrays.js'
import { DIGITS } from './datasets/embedded.js'
import { imageBytes } from './datasets/native-pixels.js'
import { alphabetsOf, presentClasses } from './datasets/splits.js'
import type { DataSplit, LabelledImages } from './datasets/types.js'
import { resolveDistributed } from './distributed.js'
import { SiameseTorchError, callSite, rethrowAtCallSite } from './errors.js'
import { toPixels, type ImageInput } from './inputs.js'
import {
  CREATE_MODEL_OPTIONS, MODEL_BUILDING_OPTIONS, MODEL_TRAIN_OPTIONS, TRAIN_OPTIONS, assertModelSized, checkModelOptions, readCheckpoint, resolveData, resolveFit,
  resolveModelPlan, resolveTrainingSettings, resolveWays, trainsTheRecipe, shapeName, trainOptionsOf, type Checkpoint, type CreateModelOptions, type EvaluateOptions,
  type ModelTrainOptions, type TrainOptions
} from './options.js'
import { runTraining, type AfterAbort, type TrainingResult } from './training.js'
import { integerIn, invalidArg, isPlainObject, nonEmptyString, optionsObject } from './validate.js'

/** One pair's verdict (`model.compare`). */
export interface Comparison {
  /** P(same class), 0..1: the model's head for pair-ce, falling with the distance for the distance losses. */
  pSame: number
  /** The Euclidean distance between the two embeddings. */
  distance: number
  /** The model's call: `pSame >= threshold` (pair-ce), `distance <= threshold` (contrastive, triplet). */
  same: boolean
}

/** What a model was built and trained for. */
export interface ModelConfig {
  /** The network that turns an image into an embedding. */
  tower: Tower
  /** Input image width and height in pixels (images are resized to this). */
  width: number
  height: number
  /** 1 (grey) or 3 (RGB): images given in the other are converted. */
  channels: Channels
  /** Length of the embedding vectors. */
  embeddingSize: number
  /** Pixel normalisation, one value a channel: (x / 255 - mean[c]) / std[c]. */
  mean: number[]
  std: number[]
  /** The loss it was trained with; it decides how pairs are scored. */
  loss: Loss
  /** Margin of the contrastive and triplet losses. */
  margin: number
  /**
   * The decision threshold: on P(same) for pair-ce (0.5), on the embedding distance for the
   * distance losses (the best one found on the test pairs after the last epoch).
   */
  threshold: number
}

/**
 * Verification metrics: how well a score tells same pairs from different ones, as verification
 * work reports it. Thresholds are in the model's own terms: P(same) for pair-ce, the embedding
 * distance for the distance losses.
 */
export interface Verification {
  /** Same pairs, and different pairs, scored. */
  positives: number
  negatives: number
  /** ROC AUC (ties counted half). */
  auc: number
  /** Equal error rate: where the false-accept rate equals the false-reject rate. */
  eer: number
  /** The threshold at the equal error rate. */
  eerThreshold: number
  /**
   * True-accept rate at false-accept rates 0.1, 0.01 and 0.001: the best TAR of a threshold whose
   * FAR is at most `far`. `tar` is null (unavailable) with fewer than `1 / far` different pairs.
   */
  tarAtFar: Array<{ far: number, tar: number | null }>
  /**
   * The ROC curve, from nothing accepted (0, 0) to everything (1, 1): at most a few hundred points
   * (kept where either rate, or the FAR's logarithm, moves), each with its threshold.
   */
  roc: { far: number[], tar: number[], threshold: number[] }
}

/** Precision@1, R-precision and MAP@R over exact nearest neighbours (Musgrave et al., 2020). */
export interface Retrieval {
  /** Images used as queries: those whose class has another image (each against all the others). */
  queries: number
  /** Share of queries whose nearest other image has their class. */
  precisionAt1: number
  /** Of a query's R nearest (R: the other images of its class), the share of its class; averaged. */
  rPrecision: number
  /** Mean average precision at R. */
  mapAtR: number
}

/** N-way K-shot accuracy over seeded episodes. */
export interface EpisodeMetrics {
  ways: number
  shots: number
  /** Queries of each class in an episode. */
  queries: number
  episodes: number
  /** Where the classes of an episode come from. */
  within: EpisodeScope
  /** Share of all queries classified right. */
  accuracy: number
  /** Half-width of its 95% confidence interval (1.96 standard errors over episodes). */
  ci95: number
}

/**
 * A model's metrics on a set of images. Every image is embedded once; then: its fixed test pairs
 * (`loss` .. `pairs`, and `verification.pairs`), all pairs of its images (`verification.allPairs`),
 * nearest neighbours (`retrieval`) and N-way K-shot episodes (`episodes`).
 */
export interface Metrics {
  /** The model's own loss on the test triplets. */
  loss: number
  /** Share of pairs decided right by the model's own rule: P(same) >= 0.5, or distance <= `config.threshold`. */
  accuracy: number
  /** ROC AUC of the pair scores. */
  auc: number
  /** Threshold of best accuracy (on P(same) for pair-ce, on the distance otherwise). */
  threshold: number
  /** Share of pairs decided right at that best threshold. */
  bestAccuracy: number
  /** Number of test pairs (half "same", half "different"). */
  pairs: number
  /** N of the episodes when they are one-shot; 0 otherwise. */
  oneShotWays: number
  /** Their accuracy when one-shot (`episodes.accuracy`); null otherwise. */
  oneShotAccuracy: number | null
  /** N-way K-shot accuracy; null when `ways` is 0. */
  episodes: EpisodeMetrics | null
  /** On the fixed test pairs, and on every pair of the set's images (null when not asked for, or when the set has no same pair). */
  verification: { pairs: Verification, allPairs: Verification | null }
  /** Nearest-neighbour retrieval; null when not asked for. */
  retrieval: Retrieval | null
  /** Classes of the set that have images. */
  classes: number
  /**
   * How many of them the model was never trained on (by name); null for a model that records no
   * classes. Equal to `classes`: every figure here is on unseen classes.
   */
  unseenClasses: number | null
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
  /**
   * Its score, by the rule of `evaluate`'s episodes: the mean P(same) of the query with that
   * class's examples (pair-ce), or P(same) of the query with the class's prototype, the mean
   * embedding of its examples (distance losses: the nearest prototype wins).
   */
  probability: number
  /** The score of every class, in `classes` order. */
  scores: number[]
  /** The class names the labels index. */
  classes: string[]
}

/** Options of `predict`, `embed` and `classify` for images given as files, bytes or raw pixels of another size. */
export interface ImageOptions {
  /**
   * How an image of another shape is brought to the model's size. Default: the fit the model
   * was trained with (`datasets.imageFolder`'s), else `'fill'` (stretched).
   */
  fit?: Fit
}

/** What `init` did when the model was created (see `createModel`). */
export interface InitReport {
  /** The file and the prefix put before our names. */
  path: string
  prefix: string
  /** Our tensors set from the file. */
  loaded: string[]
  /** Ours that the file does not have: left at their initialisation. */
  missing: string[]
  /** The file's (full names) that are not ours. */
  unexpected: string[]
  /** The embedding layer or head in the file with another shape (a classifier's fc): left as they were. */
  skipped: Array<{ name: string, reason: string }>
}

function asList<T> (value: T | readonly T[]): readonly T[] {
  return Array.isArray(value) ? value : [value as T]
}

// The two ways this module reaches inside a SiameseModel, set by its static block: no other
// module, and nothing in the published types, can.
let wrapNative: (native: NativeModel) => SiameseModel
let trainNative: (model: SiameseModel, o: Record<string, unknown>, checkpoint: Checkpoint | undefined, afterAbort: AfterAbort) => Promise<TrainingResult>
/** For lib/gallery.ts: images as the model's calls decode them (its size, channels and fit), one after another. */
export let modelPixels: (model: SiameseModel, images: readonly unknown[], name: string) => Promise<Uint8Array>
/** For lib/gallery.ts: each query embedding's k nearest rows of a gallery's index, by the model's pair score. */
export let searchIndex: (model: SiameseModel, index: NativeIndex, queries: Float32Array, k: number) => Promise<NativeNeighbours>
/** For lib/serve.ts's /metrics: the model's shared forward passes (native/addon/batcher.h) and the calls waiting. */
export let batchStats: (model: SiameseModel) => NativeBatchStats

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

  static {
    wrapNative = (native) => new SiameseModel(native)
    trainNative = (model, o, checkpoint, afterAbort) => model.#job((native) => runTraining(native, o, checkpoint, afterAbort))
    modelPixels = (model, images, name) => model.#job(async (native) => toPixels(images, model.#target(native, undefined, 'options'), name))
    searchIndex = (model, index, queries, k) => model.#job(async (native) => native.searchIndex(index, queries, k))
    batchStats = (model) => model.#use().batchStats()
  }

  /** Use `train`, `createModel` or `loadModel`. */
  private constructor (native: NativeModel) {
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

  /** LibTorch threads its work uses now: the count it was given, or the default (`version().threads`, shared between the training runs going). */
  get threads (): number {
    return this.#use().info().threads
  }

  /** Compute precision of its training and inference (see `Precision`); its weights are float32 either way. */
  get precision (): Precision {
    return this.#use().info().precision
  }

  /**
   * The most pairs that concurrent `predict` and `compare` calls share one forward pass with:
   * calls made while the model's previous pass runs go into the next one together (whole calls,
   * up to this many pairs). 0 gives every call its own pass. Default: 32 on a CPU, where larger
   * passes add latency and little throughput; 256 on a GPU. A lone call never waits either way.
   *
   * @example
   * ```ts
   * model.predictBatch = 16   // smaller passes: a lower p99 under load, fewer pairs a second
   * ```
   */
  get predictBatch (): number {
    return this.#use().info().predictBatch
  }

  set predictBatch (pairs: number) {
    this.#use().setPredictBatch(integerIn(pairs, 'predictBatch', 0, 1 << 16))
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

  /** What `init` loaded into the tower when the model was created; undefined without `init`. */
  get initReport (): InitReport | undefined {
    const text = this.#use().info().metadata['init']
    if (text === undefined) return undefined
    try {
      return JSON.parse(text) as InitReport
    } catch {
      return undefined
    }
  }

  /** The target images are decoded to for this model: its size and channels, and a fit. */
  #target (native: NativeModel, options: ImageOptions | undefined, name: string): { width: number, height: number, channels: Channels, fit: Fit } {
    const o = optionsObject(options, name, ['fit'])
    const { config, metadata } = native.info()
    return { width: config.width, height: config.height, channels: config.channels, fit: resolveFit(o, trainOptionsOf(metadata)) }
  }

  /** The pixels of `predict`'s and `compare`'s pairs: one image each, or arrays of the same length. */
  async #pairPixels (native: NativeModel, a: ImageInput | readonly ImageInput[], b: ImageInput | readonly ImageInput[],
    options: ImageOptions | undefined): Promise<{ left: Uint8Array, right: Uint8Array, count: number, many: boolean }> {
    const many = Array.isArray(a)
    if (many !== Array.isArray(b)) throw invalidArg('b', many ? 'an array, as a is' : 'a single image, as a is', b)
    const left = asList(a)
    const right = asList(b)
    if (left.length === 0) throw invalidArg('a', 'at least one image', a)
    if (left.length !== right.length) throw invalidArg('b', `${left.length} images, as many as a`, b)
    const target = this.#target(native, options, 'options')
    const [l, r] = await Promise.all([toPixels(left, target, many ? 'a[]' : 'a'), toPixels(right, target, many ? 'b[]' : 'b')])
    return { left: l, right: r, count: left.length, many }
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
  predict (a: ImageInput, b: ImageInput, options?: ImageOptions): Promise<number>
  predict (a: readonly ImageInput[], b: readonly ImageInput[], options?: ImageOptions): Promise<number[]>
  async predict (a: ImageInput | readonly ImageInput[], b: ImageInput | readonly ImageInput[], options?: ImageOptions): Promise<number | number[]> {
    const site = callSite()
    return this.#job(async (native) => {
      const { left, right, count, many } = await this.#pairPixels(native, a, b, options)
      const p = await rethrowAtCallSite(native.predictPairs(left, right, count), site)
      return many ? Array.from(p) : (p[0])
    })
  }

  /**
   * `predict` with the rest of the verdict: P(same), the distance between the two embeddings, and
   * whether the model calls the pair the same (P(same) at least its threshold for pair-ce, the
   * distance at most its threshold for the distance losses). Arrays give one per pair. The same
   * single forward pass as `predict`, whose P(same) it gives bit for bit.
   *
   * @example
   * ```ts
   * const { pSame, distance, same } = await model.compare('a.png', 'b.png')
   * ```
   */
  compare (a: ImageInput, b: ImageInput, options?: ImageOptions): Promise<Comparison>
  compare (a: readonly ImageInput[], b: readonly ImageInput[], options?: ImageOptions): Promise<Comparison[]>
  async compare (a: ImageInput | readonly ImageInput[], b: ImageInput | readonly ImageInput[], options?: ImageOptions): Promise<Comparison | Comparison[]> {
    const site = callSite()
    return this.#job(async (native) => {
      const { left, right, count, many } = await this.#pairPixels(native, a, b, options)
      const out = await rethrowAtCallSite(native.comparePairs(left, right, count), site)
      const { loss, threshold } = native.info().config
      const verdicts = Array.from({ length: count }, (_, i): Comparison => {
        const pSame = out[i] ?? 0
        const distance = out[count + i] ?? 0
        return { pSame, distance, same: loss === 'pair-ce' ? pSame >= threshold : distance <= threshold }
      })
      return many ? verdicts : (verdicts[0])
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
  async embed (images: ImageInput | readonly ImageInput[], options?: ImageOptions): Promise<Float32Array[]> {
    const site = callSite()
    return this.#job(async (native) => {
      const list = asList(images)
      if (list.length === 0) throw invalidArg('images', 'at least one image', images)
      const { embeddingSize } = native.info().config
      const target = this.#target(native, options, 'options')
      const flat = await rethrowAtCallSite(native.embed(await toPixels(list, target, 'images'), list.length), site)
      return list.map((_, i) => flat.slice(i * embeddingSize, (i + 1) * embeddingSize))
    })
  }

  /**
   * Pair metrics on the fixed test pairs of `data` (its test split, for a data set) and N-way
   * one-shot accuracy. Default data: the data the model was trained on, when it can be read again
   * by name or folder (a model never trained: the embedded digits); a model trained on sets built
   * in memory needs `data`.
   *
   * @example
   * ```ts
   * const m = await model.evaluate(await datasets.fashionMnist({ root }), { ways: 5 })
   * console.log(m.accuracy, m.auc, m.oneShotAccuracy)
   * ```
   */
  async evaluate (data?: DataSplit | LabelledImages | string, options?: EvaluateOptions): Promise<Metrics> {
    const site = callSite()
    return this.#job(async (native) => {
      const o = optionsObject(options, 'options', Object.keys(evaluationSettings))
      const { config, metadata } = native.info()
      let set: LabelledImages
      if (data === undefined || typeof data === 'string') {
        set = (await resolveData(data ?? this.#trainedOn(metadata), false, { ...config, fit: this.#target(native, undefined, 'options').fit })).test
      } else if (isPlainObject(data) && 'test' in data && 'train' in data) {
        set = assertLabelledImages(data.test, 'data.test')
      } else {
        set = assertLabelledImages(data, 'data')
      }
      if (set.width !== config.width || set.height !== config.height || (set.channels ?? 1) !== config.channels) {
        throw invalidArg('data', `${shapeName(config)} images, the model's input`, `${shapeName(set)} images`)
      }
      const within = read(evaluationSettings.within, o['within'], 'within')
      const present = presentClasses(set)
      const result = await rethrowAtCallSite(native.evaluate(toNativeData(set), {
        testSeed: read(evaluationSettings.testSeed, o['testSeed'], 'testSeed'),
        ways: resolveWays(o['ways'], set.classes.length),
        shots: read(evaluationSettings.shots, o['shots'], 'shots'),
        queries: read(evaluationSettings.queries, o['queries'], 'queries'),
        episodes: read(evaluationSettings.episodes, o['episodes'], 'episodes'),
        seed: read(evaluationSettings.seed, o['seed'], 'seed'),
        classGroups: within === 'alphabet' ? alphabetsOf(set.classes) : [],
        allPairs: read(evaluationSettings.allPairs, o['allPairs'], 'allPairs'),
        retrieval: read(evaluationSettings.retrieval, o['retrieval'], 'retrieval')
      }), site)
      const trained = this.classes
      const episodes = result.episodes === null ? null : { ...result.episodes, within }
      return {
        ...result,
        oneShotWays: episodes?.shots === 1 ? episodes.ways : 0,
        oneShotAccuracy: episodes?.shots === 1 ? episodes.accuracy : null,
        episodes,
        classes: present.length,
        unseenClasses: trained === undefined ? null : present.filter((name) => !trained.includes(name)).length
      }
    })
  }

  /**
   * The data this model was trained on, as a source evaluate() can read again; the embedded digits
   * for a model never trained. A model trained on sets built in memory knows its classes, not its
   * data: evaluating it on the digits would score it on classes it never saw, so it needs data.
   */
  #trainedOn (metadata: Record<string, string>): string {
    let recorded: Checkpoint | undefined
    try {
      recorded = readCheckpoint('this model', metadata)
    } catch {
      // A record that cannot be read says nothing about the data: decide by the classes alone.
    }
    if (recorded?.dataSource !== undefined) return recorded.dataSource
    const classes = this.classes
    if (classes === undefined || (classes.length === DIGITS.length && classes.every((c, i) => c === DIGITS[i]))) return defaults.data
    throw invalidArg('data', `the data to evaluate on: this model was trained on ${recorded?.dataName ?? 'other data'} ` +
      `(classes ${classes.slice(0, 5).join(', ')}${classes.length > 5 ? ', ...' : ''}), not on the digits`, undefined)
  }

  /**
   * 16 hex digits that identify what decides this model's embeddings: its input size, channels,
   * normalisation, tower and every weight and statistic, bit for bit. A saved and loaded model
   * keeps it; training changes it. Galleries record it, so that embeddings of two models are
   * never mixed.
   *
   * @example
   * ```ts
   * const a = await loadModel('model.safetensors')
   * console.log(await a.fingerprint())   // e.g. '3f9c0d1e2a4b5c6d'
   * ```
   */
  async fingerprint (): Promise<string> {
    const site = callSite()
    return this.#job(async (native) => rethrowAtCallSite(native.fingerprint(), site))
  }

  /**
   * One-shot (or K-shot) classification: each query goes to the class whose examples in
   * `support` it is most likely to match, by the rules of `evaluate`'s N-way K-shot episodes
   * (see `Classification.probability`).
   *
   * @example
   * ```ts
   * const support = { images: ['ref/cat.png', 'ref/dog.png'], labels: ['cat', 'dog'] }
   * const [verdict] = await model.classify('query.png', support)
   * console.log(verdict.className, verdict.probability)
   * ```
   */
  async classify (queries: ImageInput | readonly ImageInput[], support: LabelledImages | SupportSet, options?: ImageOptions): Promise<Classification[]> {
    const site = callSite()
    return this.#job(async (native) => {
      const list = asList(queries)
      if (list.length === 0) throw invalidArg('queries', 'at least one image', queries)
      const target = this.#target(native, options, 'options')
      const { width, height, channels } = target
      let supportPixels: Uint8Array
      let supportLabels: Int32Array
      let classes: string[]
      if (isPlainObject(support) && 'count' in support) {
        const set = assertLabelledImages(support, 'support')
        if (set.width !== width || set.height !== height || (set.channels ?? 1) !== channels) {
          throw invalidArg('support', `${shapeName(target)} images, the model's input`, `${shapeName(set)} images`)
        }
        supportPixels = imageBytes(set, 0, set.count)
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
        supportPixels = await toPixels(images, target, 'support.images[]')
      } else {
        throw invalidArg('support', 'a labelled image set or { images, labels }', support)
      }
      const queryPixels = await toPixels(list, target, 'queries')
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
  async train (options: ModelTrainOptions = {}): Promise<TrainingResult> {
    const site = callSite()
    const o = optionsObject(options, 'options', MODEL_TRAIN_OPTIONS)
    return rethrowAtCallSite(trainNative(this, o, undefined, 'kept'), site)
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
      await rethrowAtCallSite(native.save(target), site)
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
}

/**
 * A new, untrained model (default: the reference network, freshly initialised), or one whose
 * tower starts from weights trained in PyTorch (`init`).
 *
 * @example
 * ```ts
 * const model = await createModel({ loss: 'contrastive', margin: 2 })
 * await model.train({ data: 'embedded', epochs: 2 })
 * const photos = await createModel({ tower: 'resnet18', width: 64, height: 64, channels: 3, init: 'resnet18.safetensors' })
 * console.log(photos.initReport?.missing)
 * ```
 */
export async function createModel (options?: CreateModelOptions): Promise<SiameseModel> {
  const site = callSite()
  const plan = resolveModelPlan(optionsObject(options, 'options', CREATE_MODEL_OPTIONS))
  const native = await rethrowAtCallSite(binding().createModel(plan.config, plan.device, plan.seed, plan.threads, plan.init, plan.weightInit), site)
  return wrapNative(inPrecision(native, plan.precision))
}

/** A new native model set to compute in `precision`; freed when this machine cannot (ERR_UNSUPPORTED). */
function inPrecision (native: NativeModel, precision: Precision): NativeModel {
  if (precision === 'fp32') return native
  try {
    native.setPrecision(precision)
  } catch (err) {
    native.dispose()
    throw err
  }
  return native
}

/** Options of `loadModel`. */
export type LoadModelOptions = Partial<Pick<CreateModelOptions, 'device' | 'threads' | 'precision'>>

/**
 * A model saved by `save` or by training (`model.safetensors`, or a checkpoint). Every header
 * field is checked before any data is read; a malformed file rejects with `ERR_BAD_FILE`.
 *
 * @example
 * ```ts
 * const model = await loadModel('out/model.safetensors', { device: 'cpu' })
 * ```
 */
export async function loadModel (path: string, options?: LoadModelOptions): Promise<SiameseModel> {
  const site = callSite()
  const file = resolve(nonEmptyString(path, 'path'))
  const o = optionsObject(options, 'options', ['device', 'threads', 'precision'])
  const device = read(modelSettings.device, o['device'], 'device')
  const threads = read(modelSettings.threads, o['threads'], 'threads') ?? 0
  const precision = read(modelSettings.precision, o['precision'], 'precision')
  const { model } = await rethrowAtCallSite(binding().loadModel(file, device, threads, false), site)
  return wrapNative(inPrecision(model, precision))
}

/**
 * Trains a Siamese network natively, on its own thread: the promise settles when training ends,
 * while the event loop stays free. Defaults are the reference recipe (docs/recipe.md) on the
 * embedded digits, with the balanced pair scheme. When it rejects, the model it built is freed.
 *
 * @example
 * ```ts
 * import { train, datasets } from 'siamese-torch'
 * const { test } = await datasets.embedded()
 * const { model, history } = await train({ epochs: 2 })
 * console.log(history.at(-1)?.testAccuracy)
 * const pSame = await model.predict(test.images.subarray(0, 784), test.images.subarray(784, 1568))
 * ```
 */
export async function train (options: TrainOptions = {}): Promise<TrainingResult & { model: SiameseModel }> {
  const site = callSite()
  const o = optionsObject(options, 'options', TRAIN_OPTIONS)
  return rethrowAtCallSite(o['resume'] === undefined ? trainNew(o) : resume(o), site)
}

/**
 * The device of a distributed run's rank: a GPU asked for without an index ('auto', 'cuda') is the
 * rank's own, `cuda:<LOCAL_RANK mod the GPUs>`, as torchrun users pin theirs (NCCL refuses two
 * ranks on one GPU). Any other device, or a run in one process, is left as it is.
 */
function rankDevice (device: unknown, o: Record<string, unknown>): unknown {
  if (o['distributed'] === undefined || o['distributed'] === false) return device
  if (device !== undefined && device !== 'auto' && device !== 'cuda') return device
  const gpus = binding().version().cudaDevices.length
  if (gpus === 0) return device
  const distributed = resolveDistributed(o['distributed'])
  const localRank = Number(process.env['LOCAL_RANK'] ?? distributed?.rank ?? 0)
  return `cuda:${(Number.isInteger(localRank) ? localRank : 0) % gpus}`
}

/** train() without resume: every option checked, the data read, a model of its size built, then trained. */
async function trainNew (o: Record<string, unknown>): Promise<TrainingResult & { model: SiameseModel }> {
  const building = Object.fromEntries(CREATE_MODEL_OPTIONS.map((key) => [key, key === 'device' ? rankDevice(o[key], o) : o[key]]))
  checkModelOptions(building) // before the data is read
  const settings = resolveTrainingSettings(o, undefined)
  const fit = resolveFit(o, undefined)
  const folder = {
    width: read(modelSettings.width, o['width'], 'width'),
    height: read(modelSettings.height, o['height'], 'height'),
    channels: read(modelSettings.channels, o['channels'], 'channels'),
    fit
  }
  const data = await resolveData(o['data'] ?? defaults.data, read(downloadSettings.download, o['download'], 'download'), folder)
  assertModelSized(data, read(modelSettings.tower, o['tower'], 'tower'))
  const plan = resolveModelPlan(building, { width: data.train.width, height: data.train.height, channels: data.train.channels ?? 1, stats: data.stats },
    trainsTheRecipe(settings))
  const model = wrapNative(inPrecision(await binding().createModel(plan.config, plan.device, plan.seed, plan.threads, plan.init, plan.weightInit), plan.precision))
  return trainOrFree(model, { ...o, data }, undefined)
}

/** train({ resume }): the checkpoint loaded with its optimiser state, then trained on. */
async function resume (o: Record<string, unknown>): Promise<TrainingResult & { model: SiameseModel }> {
  for (const key of MODEL_BUILDING_OPTIONS) {
    if (o[key] !== undefined) throw invalidArg(key, `no ${key} with resume (the checkpoint's model goes on as it was built)`, o[key])
  }
  const path = resolve(nonEmptyString(o['resume'], 'resume'))
  const device = read(modelSettings.device, rankDevice(o['device'], o), 'device')
  const threads = read(trainingSettings.threads, o['threads'], 'threads') ?? 0
  const { model: native, checkpoint } = await binding().loadModel(path, device, threads, true)
  const model = wrapNative(native)
  if (!checkpoint) {
    model.dispose()
    throw new SiameseTorchError(`${path}: not a checkpoint (it has no optimizer state); train a loaded model with model.train`,
      'ERR_BAD_FILE', { path })
  }
  let state: Checkpoint
  try {
    state = readCheckpoint(path, native.info().metadata)
  } catch (err) {
    model.dispose()
    throw err
  }
  return trainOrFree(model, o, state)
}

/** Trains a model train() built; when that fails, frees it: the caller never receives it. */
async function trainOrFree (model: SiameseModel, o: Record<string, unknown>, checkpoint: Checkpoint | undefined): Promise<TrainingResult & { model: SiameseModel }> {
  try {
    return { model, ...await trainNative(model, o, checkpoint, 'freed') }
  } catch (err) {
    model.dispose()
    throw err
  }
}
