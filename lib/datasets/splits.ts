// Class-disjoint splits: a Siamese network is for classes it never trained on, so that is what it
// must be measured on. splitClasses() puts whole classes on one side or the other; the helpers
// below tell which classes a set holds and which of them a model has seen.
import { SiameseTorchError } from '../errors.js'
import { integerIn, invalidArg, isPlainObject, optionsObject } from '../validate.js'
import { assertLabelledImages, classCounts, pixelStats } from './arrays.js'
import { nativeSet, storeOf } from './native-pixels.js'
import { alphabetOf } from './omniglot.js'
import type { DataSplit, LabelledImages } from './types.js'

/** Options of `datasets.splitClasses`. */
export interface SplitClassesOptions {
  /**
   * The classes held out for testing: their names, or a fraction of the classes (0 < f < 1,
   * rounded, at least one class on each side) drawn with `seed`.
   */
  test: readonly string[] | number
  /** Seed of the draw when `test` is a fraction. Default 0. */
  seed?: number
}

/**
 * Splits a data set by class: the training split keeps the images of some classes, the test
 * split those of the others, so that a model trained on `train` is tested on classes it never
 * saw. From a `DataSplit`, the training classes' images come from its training split and the
 * held-out classes' from its test split (so no test image was ever a training image either);
 * from one labelled set, each class's images go wholly to one side. Each side lists only its own
 * classes (labels renumbered, names and order kept). Passed to `train({ data })`, the test
 * figures of every epoch are then on unseen classes, and say so (`unseenClasses`).
 *
 * @example
 * ```ts
 * const digits = await datasets.embedded()
 * const split = datasets.splitClasses(digits, { test: ['6', '7', '8', '9'] })
 * const { model } = await train({ data: split, epochs: 5 })
 * const m = await model.evaluate(split.test, { ways: 4, shots: 1 })
 * console.log(m.unseenClasses, m.episodes?.accuracy)
 * ```
 */
export function splitClasses (data: DataSplit | LabelledImages, options: SplitClassesOptions): DataSplit {
  const o = optionsObject(options, 'options', ['test', 'seed'])
  const whole = isPlainObject(data) && 'train' in data && 'test' in data
  const source: DataSplit = whole
    ? data as DataSplit
    : { name: 'images', train: assertLabelledImages(data, 'data'), test: assertLabelledImages(data, 'data') }
  if (whole) {
    assertLabelledImages(source.train, 'data.train')
    assertLabelledImages(source.test, 'data.test')
  }
  const names = [...new Set([...presentClasses(source.train), ...presentClasses(source.test)])]
  if (names.length < 2) throw invalidArg('data', 'images of at least two classes', `${names.length} class`)
  const seed = o['seed'] === undefined ? 0 : integerIn(o['seed'], 'options.seed', 0, Number.MAX_SAFE_INTEGER)
  const held = heldOutClasses(o['test'], names, seed)
  const trained = names.filter((name) => !held.has(name))
  const train = selectClasses(source.train, trained, 'train')
  const test = selectClasses(source.test, [...held], 'test')
  return {
    name: `${source.name} (trained on ${trained.length} classes, tested on ${held.size} others)`,
    train,
    test,
    ...(source.stats === undefined ? {} : { stats: pixelStats(train) })
  }
}

function heldOutClasses (value: unknown, names: readonly string[], seed: number): Set<string> {
  if (Array.isArray(value)) {
    const held = new Set<string>()
    value.forEach((name: unknown, i) => {
      if (typeof name !== 'string' || !names.includes(name)) {
        throw invalidArg(`options.test[${i}]`, `one of the classes (${names.slice(0, 10).join(', ')}${names.length > 10 ? ', ...' : ''})`, name)
      }
      held.add(name)
    })
    if (held.size === 0 || held.size === names.length) {
      throw invalidArg('options.test', `some of the ${names.length} classes, not none or all`, value)
    }
    return held
  }
  if (typeof value !== 'number' || !(value > 0 && value < 1)) {
    throw invalidArg('options.test', 'class names, or a fraction of the classes between 0 and 1', value)
  }
  const count = Math.min(names.length - 1, Math.max(1, Math.round(value * names.length)))
  const order = [...names]
  const random = seededRandom(seed)
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[order[i], order[j]] = [order[j], order[i]]
  }
  return new Set(order.slice(0, count))
}

/** The images of `keep` (class names), relabelled over `keep` in the set's own class order. */
function selectClasses (set: LabelledImages, keep: readonly string[], side: string): LabelledImages {
  const classes = set.classes.filter((name) => keep.includes(name))
  const newLabel = set.classes.map((name) => classes.indexOf(name))
  const chosen: number[] = []
  for (let i = 0; i < set.count; i++) if ((newLabel[set.labels[i]]) >= 0) chosen.push(i)
  if (chosen.length === 0) {
    throw new SiameseTorchError(`splitClasses: the ${side} split has no image of ${keep.join(', ')}`, 'ERR_INVALID_ARG')
  }
  const labels = Int32Array.from(chosen, (i) => newLabel[set.labels[i]])
  const channels = set.channels ?? 1
  const size = set.width * set.height * channels
  const fields = {
    labels,
    count: chosen.length,
    width: set.width,
    height: set.height,
    channels,
    classes,
    ...(set.fit === undefined ? {} : { fit: set.fit })
  }
  const store = storeOf(set)
  if (store !== undefined) {
    // Held natively: so is the part, copied there in one call, without a copy in JavaScript.
    return nativeSet(store.select(Int32Array.from(chosen)), fields)
  }
  const images = new Uint8Array(chosen.length * size)
  chosen.forEach((from, to) => images.set(set.images.subarray(from * size, (from + 1) * size), to * size))
  return { images, ...fields }
}

/** The names of the classes that have images in `set`, in its class order. */
export function presentClasses (set: LabelledImages): string[] {
  const counts = classCounts(set)
  return set.classes.filter((_, i) => (counts[i] ?? 0) > 0)
}

/** How many classes with images in `test` have none in `train` (by name). */
export function unseenClasses (train: LabelledImages, test: LabelledImages): number {
  const trained = new Set(presentClasses(train))
  return presentClasses(test).filter((name) => !trained.has(name)).length
}

/**
 * The alphabet of each class (`alphabetOf`: the part of its name before the first '/', as in
 * Omniglot's "Latin/character01"), as a group number. Classes named without one are refused: each
 * would be an alphabet of one.
 */
export function alphabetsOf (classes: readonly string[]): number[] {
  if (!classes.some((name) => name.includes('/'))) {
    throw invalidArg('within', "'set', for classes not named 'alphabet/character'", `'alphabet' with classes such as '${classes[0] ?? ''}'`)
  }
  const alphabets: string[] = []
  return classes.map((name) => {
    const alphabet = alphabetOf(name)
    const known = alphabets.indexOf(alphabet)
    return known >= 0 ? known : alphabets.push(alphabet) - 1
  })
}

/** mulberry32 over a mix of the seed's two 32-bit halves: the same draw on every platform. */
function seededRandom (seed: number): () => number {
  let state = (Math.floor(seed / 0x100000000) ^ Math.imul(seed >>> 0, 0x9e3779b9) ^ 0x6d2b79f5) >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
