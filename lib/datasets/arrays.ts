import type { NativeImageData } from '../binding.js'
import { MAX_SIDE } from '../contract.js'
import { integerIn, invalidArg, isPlainObject, isStringArray, optionsObject } from '../validate.js'
import type { LabelledImages } from './types.js'

/** Pixels of one or many images: bytes (0..255) or floats in 0..1. */
export type PixelArray = Uint8Array | Uint8ClampedArray | Float32Array | Float64Array

/** What `fromArrays` accepts. */
export interface ArraysInput {
  /** All images in one array (`count * height * width`), or one array per image. */
  images: PixelArray | readonly PixelArray[]
  /** One non-negative integer label per image. */
  labels: ArrayLike<number>
  width: number
  height: number
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
 * the arrays do not reach the set.
 *
 * @example
 * ```ts
 * import { datasets } from 'siamese-torch'
 * const set = datasets.fromArrays({ images: pixels, labels: [3, 1, 4], width: 28, height: 28 })
 * const { model } = await train({ data: { train: set, test: otherSet } })
 * ```
 */
export function fromArrays (input: ArraysInput): LabelledImages {
  const o = optionsObject(input, 'fromArrays(input)', ['images', 'labels', 'width', 'height', 'classes'])
  const width = integerIn(o['width'], 'width', 1, MAX_SIDE)
  const height = integerIn(o['height'], 'height', 1, MAX_SIDE)
  const labels = toLabels(o['labels'], 'labels')
  const count = labels.length
  if (count === 0) throw invalidArg('labels', 'at least one label', o['labels'])
  const classes = toClasses(o['classes'], labels, 'classes')
  const pixelsPerImage = width * height
  const images = new Uint8Array(count * pixelsPerImage)
  const given = o['images']
  if (isPixelArray(given)) {
    if (given.length !== images.length) {
      // Whole images of the right size, more of them than labels: the labels are what is short.
      if (given.length % pixelsPerImage === 0 && given.length > images.length) {
        const imageCount = given.length / pixelsPerImage
        throw invalidArg('labels', `${imageCount} labels, one per image (images holds ${imageCount} images of ${width}x${height})`, o['labels'])
      }
      throw invalidArg('images', `${images.length} pixels (${count} images of ${width}x${height})`, given)
    }
    copyPixels(given, images, 0, 'images')
  } else if (Array.isArray(given)) {
    if (given.length > count) throw invalidArg('labels', `${given.length} labels, one per image`, o['labels'])
    if (given.length < count) throw invalidArg('images', `${count} images, one per label`, given)
    Array.from(given as unknown[]).forEach((image: unknown, i) => {
      if (!isPixelArray(image) || image.length !== pixelsPerImage) {
        throw invalidArg(`images[${i}]`, `a Uint8Array or Float32Array of ${pixelsPerImage} pixels (${width}x${height})`, image)
      }
      copyPixels(image, images, i * pixelsPerImage, `images[${i}]`)
    })
  } else {
    throw invalidArg('images', 'a Uint8Array, Float32Array or an array of them', given)
  }
  return { images, labels, count, width, height, classes }
}

/**
 * Checks a LabelledImages built by hand (or by another version of this package) before it goes
 * native: right types, consistent sizes, labels within classes.
 */
export function assertLabelledImages (value: unknown, name: string): LabelledImages {
  if (!isPlainObject(value)) throw invalidArg(name, 'a labelled image set (see datasets.fromArrays)', value)
  const { images, labels, count, width, height, classes } = value
  const w = integerIn(width, `${name}.width`, 1, MAX_SIDE)
  const h = integerIn(height, `${name}.height`, 1, MAX_SIDE)
  const n = integerIn(count, `${name}.count`, 1)
  if (!(images instanceof Uint8Array) || images.length !== n * w * h) {
    throw invalidArg(`${name}.images`, `a Uint8Array of ${n * w * h} pixels (use datasets.fromArrays for other forms)`, images)
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
  return { images: set.images, labels: set.labels, count: set.count, width: set.width, height: set.height, numClasses }
}
