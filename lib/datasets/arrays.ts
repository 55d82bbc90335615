import type { NativeImageData } from '../binding.js'
import { storeOf } from './native-pixels.js'
import { MAX_SIDE } from '../contract.js'
import { integerIn, invalidArg, isPlainObject, isStringArray, optionsObject } from '../validate.js'
import type { LabelledImages } from './types.js'

/** Pixels of one or many images: bytes (0..255) or floats in 0..1. */
export type PixelArray = Uint8Array | Uint8ClampedArray | Float32Array | Float64Array

/** What `fromArrays` accepts. */
export interface ArraysInput {
  /**
   * All images in one array (`count * height * width * channels` values), or one array per image
   * (`height * width * channels`); row by row, channels interleaved (RGBRGB...).
   */
  images: PixelArray | readonly PixelArray[]
  /** One non-negative integer label per image. */
  labels: ArrayLike<number>
  width: number
  height: number
  /** 1 (gray, the default) or 3 (RGB). */
  channels?: 1 | 3
  /** Class names; default `"0"`, `"1"`, ... up to the largest label. */
  classes?: readonly string[]
}

function copyPixels (source: PixelArray, into: Uint8Array, offset: number, name: string): void {
  if (source instanceof Uint8Array || source instanceof Uint8ClampedArray) {
    into.set(source, offset)
    return
  }
  for (let i = 0; i < source.length; i++) {
    const v = source[i]
    if (!(v >= 0 && v <= 1)) {
      throw invalidArg(`${name}[${i}]`, 'a finite pixel value from 0 to 1 (floats are 0..1)', v)
    }
    into[offset + i] = Math.round(v * 255)
  }
}

/** What sizes are counted in, in messages: gray images have one value a pixel, colour ones three. */
function unit (channels: number): string {
  return channels === 1 ? 'pixels' : 'values'
}

/** An image's shape in messages: `28x28` gray, `32x32x3` colour. */
function shape (width: number, height: number, channels: number): string {
  return channels === 1 ? `${width}x${height}` : `${width}x${height}x${channels}`
}

/** 1 or 3, or `fallback` when absent. */
function channelCount (value: unknown, name: string, fallback: 1 | 3): 1 | 3 {
  if (value === undefined) return fallback
  if (value !== 1 && value !== 3) throw invalidArg(name, '1 (grey) or 3 (RGB)', value)
  return value
}

function isPixelArray (value: unknown): value is PixelArray {
  return value instanceof Uint8Array || value instanceof Uint8ClampedArray ||
    value instanceof Float32Array || value instanceof Float64Array
}

/** Labels as Int32Array, each a non-negative integer. */
function toLabels (value: unknown, name: string): Int32Array {
  if (!(Array.isArray(value) || (ArrayBuffer.isView(value) && !(value instanceof DataView)))) {
    throw invalidArg(name, 'an array of integer labels', value)
  }
  const source = value as ArrayLike<unknown>
  const out = new Int32Array(source.length)
  for (let i = 0; i < source.length; i++) {
    const v = source[i]
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
      throw invalidArg(`${name}[${i}]`, 'a non-negative integer label', v)
    }
    out[i] = v
  }
  return out
}

function toClasses (value: unknown, labels: Int32Array, name: string): string[] {
  let largest = -1
  for (const l of labels) largest = Math.max(largest, l)
  if (value === undefined) return Array.from({ length: largest + 1 }, (_, i) => String(i))
  if (!isStringArray(value)) {
    throw invalidArg(name, 'a non-empty array of class names', value)
  }
  if (largest >= value.length) {
    throw invalidArg(name, `at least ${largest + 1} class names (the largest label is ${largest})`, value)
  }
  return [...value] as string[]
}

/**
 * One labelled image set from arrays already in memory. The data is copied: later changes to
 * the arrays do not reach the set. Colour images (`channels: 3`) are RGB, channels interleaved.
 *
 * @example
 * ```ts
 * import { datasets } from 'siamese-torch'
 * const set = datasets.fromArrays({ images: pixels, labels: [3, 1, 4], width: 28, height: 28 })
 * const { model } = await train({ data: { train: set, test: otherSet } })
 * // Three 32x32 RGB images, 3 * 32 * 32 * 3 bytes:
 * const colour = datasets.fromArrays({ images: rgb, labels: [0, 1, 1], width: 32, height: 32, channels: 3 })
 * ```
 */
export function fromArrays (input: ArraysInput): LabelledImages {
  const o = optionsObject(input, 'fromArrays(input)', ['images', 'labels', 'width', 'height', 'channels', 'classes'])
  const width = integerIn(o['width'], 'width', 1, MAX_SIDE)
  const height = integerIn(o['height'], 'height', 1, MAX_SIDE)
  const channels = channelCount(o['channels'], 'channels', 1)
  const labels = toLabels(o['labels'], 'labels')
  const count = labels.length
  if (count === 0) throw invalidArg('labels', 'at least one label', o['labels'])
  const classes = toClasses(o['classes'], labels, 'classes')
  const pixelsPerImage = width * height * channels
  const images = new Uint8Array(count * pixelsPerImage)
  const given = o['images']
  if (isPixelArray(given)) {
    if (given.length !== images.length) {
      // Whole images of the right size, more of them than labels: the labels are what is short.
      if (given.length % pixelsPerImage === 0 && given.length > images.length) {
        const imageCount = given.length / pixelsPerImage
        throw invalidArg('labels', `${imageCount} labels, one per image (images holds ${imageCount} images of ${shape(width, height, channels)})`, o['labels'])
      }
      throw invalidArg('images', `${images.length} ${unit(channels)} (${count} images of ${shape(width, height, channels)})`, given)
    }
    copyPixels(given, images, 0, 'images')
  } else if (Array.isArray(given)) {
    if (given.length > count) throw invalidArg('labels', `${given.length} labels, one per image`, o['labels'])
    if (given.length < count) throw invalidArg('images', `${count} images, one per label`, given)
    Array.from(given as unknown[]).forEach((image: unknown, i) => {
      if (!isPixelArray(image) || image.length !== pixelsPerImage) {
        throw invalidArg(`images[${i}]`, `a Uint8Array or Float32Array of ${pixelsPerImage} ${unit(channels)} (${shape(width, height, channels)})`, image)
      }
      copyPixels(image, images, i * pixelsPerImage, `images[${i}]`)
    })
  } else {
    throw invalidArg('images', 'a Uint8Array, Float32Array or an array of them', given)
  }
  return { images, labels, count, width, height, channels, classes }
}

/**
 * Checks a LabelledImages built by hand (or by another version of this package) before it goes
 * native: right types, consistent sizes, labels within classes.
 */
export function assertLabelledImages (value: unknown, name: string): LabelledImages {
  if (!isPlainObject(value)) throw invalidArg(name, 'a labelled image set (see datasets.fromArrays)', value)
  const { labels, count, width, height, channels, classes } = value
  const w = integerIn(width, `${name}.width`, 1, MAX_SIDE)
  const h = integerIn(height, `${name}.height`, 1, MAX_SIDE)
  const c = channelCount(channels, `${name}.channels`, 1)
  const n = integerIn(count, `${name}.count`, 1)
  // Pixels held natively (an image folder's) were checked when they were made: their images are
  // not read here, which would copy them into JavaScript.
  const images = storeOf(value) === undefined ? value['images'] : undefined
  if (images !== undefined ? !(images instanceof Uint8Array) || images.length !== n * w * h * c : storeOf(value) === undefined) {
    throw invalidArg(`${name}.images`, `a Uint8Array of ${n * w * h * c} ${unit(c)} (${n} images of ${shape(w, h, c)}; ` +
      'use datasets.fromArrays for other forms)', images)
  }
  if (!(labels instanceof Int32Array) || labels.length !== n) {
    throw invalidArg(`${name}.labels`, `an Int32Array of ${n} labels`, labels)
  }
  if (!isStringArray(classes)) {
    throw invalidArg(`${name}.classes`, 'a non-empty array of class names', classes)
  }
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]
    if (l < 0 || l >= classes.length) {
      throw invalidArg(`${name}.labels[${i}]`, `a label from 0 to ${classes.length - 1}`, l)
    }
  }
  return value as unknown as LabelledImages
}

/** Counts of images per class, in class order. */
export function classCounts (set: LabelledImages): number[] {
  assertLabelledImages(set, 'set')
  const counts = new Array<number>(set.classes.length).fill(0)
  for (const l of set.labels) counts[l] = (counts[l] ?? 0) + 1
  return counts
}

/** A set as the addon reads it; `numClasses` defaults to the set's own class count. */
export function toNativeData (set: LabelledImages, numClasses: number = set.classes.length): NativeImageData {
  const { labels, count, width, height } = set
  const pixels = storeOf(set)
  return { images: pixels === undefined ? set.images : undefined, pixels, labels, count, width, height, channels: set.channels ?? 1, numClasses }
}

/**
 * The mean and (population) standard deviation of each channel's pixels, as `pixel / 255`, over
 * every image of `set`: the `mean` and `std` that normalise it. A channel that never varies gets a
 * std of 1, so that normalising never divides by zero. One pass, float64 sums.
 *
 * @example
 * ```ts
 * const { train } = await datasets.imageFolder('./photos', { width: 64, height: 64 })
 * const { mean, std } = datasets.pixelStats(train) // e.g. mean [0.48, 0.45, 0.40], std [0.27, 0.26, 0.28]
 * ```
 */
export function pixelStats (set: LabelledImages): { mean: number[], std: number[] } {
  assertLabelledImages(set, 'set')
  const store = storeOf(set)
  if (store !== undefined) return store.stats()
  const channels = set.channels ?? 1
  const { images } = set
  // Sums of bytes and of their squares: whole numbers, exact in a double up to 2^53 (some 10^11
  // pixels), so that a channel that never varies has a variance of exactly 0.
  const sums = [0, 0, 0]
  const squares = [0, 0, 0]
  if (channels === 1) {
    let sum = 0
    let square = 0
    for (const v of images) {
      sum += v
      square += v * v
    }
    sums[0] = sum
    squares[0] = square
  } else {
    let r = 0
    let g = 0
    let b = 0
    let rr = 0
    let gg = 0
    let bb = 0
    for (let i = 0; i < images.length; i += 3) {
      const x = images[i]
      const y = images[i + 1]
      const z = images[i + 2]
      r += x
      g += y
      b += z
      rr += x * x
      gg += y * y
      bb += z * z
    }
    sums.splice(0, 3, r, g, b)
    squares.splice(0, 3, rr, gg, bb)
  }
  const n = images.length / channels
  const mean: number[] = []
  const std: number[] = []
  for (let c = 0; c < channels; c++) {
    const m = sums[c] / n
    const variance = Math.max(0, squares[c] / n - m * m)
    mean.push(m / 255)
    std.push(variance === 0 ? 1 : Math.sqrt(variance) / 255)
  }
  return { mean, std }
}
