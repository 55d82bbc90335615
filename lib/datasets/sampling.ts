// Typed wrappers over the native samplers. Indices refer to images of the set they were drawn
// from. All are seeded: the same set, options and seed give the same result on every machine.
import { binding } from '../binding.js'
import { evaluationSettings, read, samplingSettings, type Values } from '../contract.js'
import { integerIn, optionsObject } from '../validate.js'
import { assertLabelledImages } from './arrays.js'
import type { LabelledImages } from './types.js'

/** Index triplets: `anchor[i]` and `positive[i]` share a class, `negative[i]` is of another. */
export interface Triplets {
  anchor: Int32Array
  positive: Int32Array
  negative: Int32Array
}

/** Index pairs with their target: `same[i]` is 1 when `left[i]` and `right[i]` share a class. */
export interface Pairs {
  left: Int32Array
  right: Int32Array
  same: Uint8Array
}

/** Options of `datasets.triplets` and `datasets.pairs`. */
export type SamplingOptions = Partial<Values<typeof samplingSettings>>

/** Options of `datasets.classBalancedBatches`. */
export interface BatchOptions {
  /** P: distinct classes in each batch. */
  classesPerBatch: number
  /** K: images of each of those classes. */
  imagesPerClass: number
  seed?: number
  epoch?: number
}

/**
 * Triplets (anchor, positive, negative) of `set` under a pair scheme.
 *
 * @example
 * ```ts
 * const { train } = await datasets.embedded()
 * const t = datasets.triplets(train, { scheme: 'reference', seed: 1 })
 * console.log(t.anchor.length) // 5000
 * ```
 */
export function triplets (set: LabelledImages, options?: SamplingOptions): Triplets {
  const s = assertLabelledImages(set, 'set')
  const o = optionsObject(options, 'options', ['scheme', 'seed', 'epoch'])
  const scheme = read(samplingSettings.scheme, o['scheme'], 'scheme')
  const seed = read(samplingSettings.seed, o['seed'], 'seed')
  const epoch = read(samplingSettings.epoch, o['epoch'], 'epoch')
  return binding().sampleTriplets(s.labels, s.classes.length, scheme, seed, epoch)
}

/** Pairs from triplets: (anchor, positive, same = 1) then (anchor, negative, same = 0), for each. */
function pairsFromTriplets (t: Triplets): Pairs {
  const n = t.anchor.length
  const left = new Int32Array(2 * n)
  const right = new Int32Array(2 * n)
  const same = new Uint8Array(2 * n)
  for (let i = 0; i < n; i++) {
    left[2 * i] = left[2 * i + 1] = t.anchor[i]
    right[2 * i] = t.positive[i]
    right[2 * i + 1] = t.negative[i]
    same[2 * i] = 1
  }
  return { left, right, same }
}

/**
 * Labelled pairs of `set`: one "same" and one "different" pair per triplet, so always balanced.
 *
 * @example
 * ```ts
 * const p = datasets.pairs(train, { seed: 7, epoch: 3 })
 * ```
 */
export function pairs (set: LabelledImages, options?: SamplingOptions): Pairs {
  return pairsFromTriplets(triplets(set, options))
}

/**
 * The fixed test pairs of a set: the balanced scheme with a fixed seed (default 0) and epoch 0.
 * Accuracy measured on them compares between runs, machines and tools.
 */
export function testPairs (set: LabelledImages, options?: { seed?: number }): Pairs {
  const o = optionsObject(options, 'options', ['seed'])
  return pairs(set, { scheme: 'balanced', seed: read(evaluationSettings.testSeed, o['seed'], 'seed'), epoch: 0 })
}

/**
 * Class-balanced batches for online triplet mining (batch-hard, semi-hard): each batch has
 * `imagesPerClass` images of each of `classesPerBatch` distinct classes.
 *
 * @example
 * ```ts
 * const batches = datasets.classBalancedBatches(train, { classesPerBatch: 8, imagesPerClass: 4 })
 * batches[0].length // 32
 * ```
 */
export function classBalancedBatches (set: LabelledImages, options: BatchOptions): Int32Array[] {
  const s = assertLabelledImages(set, 'set')
  const o = optionsObject(options, 'options', ['classesPerBatch', 'imagesPerClass', 'seed', 'epoch'])
  const p = integerIn(o['classesPerBatch'], 'classesPerBatch', 2, s.classes.length)
  const k = integerIn(o['imagesPerClass'], 'imagesPerClass', 2, 1 << 16)
  const seed = read(samplingSettings.seed, o['seed'], 'seed')
  const epoch = read(samplingSettings.epoch, o['epoch'], 'epoch')
  const flat = binding().classBalancedBatches(s.labels, s.classes.length, p, k, seed, epoch)
  const out: Int32Array[] = []
  for (let i = 0; i < flat.length; i += p * k) out.push(flat.subarray(i, i + p * k))
  return out
}
