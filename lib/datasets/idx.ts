import { existsSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'

import { binding } from '../binding.js'
import { SiameseTorchError, rethrowAtCallSite, callSite } from '../errors.js'
import { invalidArg, isStringArray, nonEmptyString, optionsObject } from '../validate.js'
import { nativeSet, withFields } from './native-pixels.js'
import type { DataSplit, LabelledImages } from './types.js'

/** The four files of an IDX data set, without the optional `.gz`. */
export const IDX_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte'
} as const

export type IdxFileKey = keyof typeof IDX_FILES

/** The file for `key` in `dir`, gzipped or raw; undefined when neither exists. */
export function findIdxFile (dir: string, key: IdxFileKey): string | undefined {
  for (const name of [`${IDX_FILES[key]}.gz`, IDX_FILES[key]]) {
    const file = join(dir, name)
    if (existsSync(file)) return file
  }
  return undefined
}

/**
 * Reads one split natively (off the main thread). Its pixels stay there, in a store that training,
 * evaluation and inference read in place (native-pixels.ts); `images` copies them when read.
 */
async function readSplit (imagesFile: string, labelsFile: string, classes: readonly string[] | undefined): Promise<LabelledImages> {
  const raw = await binding().readIdx(imagesFile, labelsFile, classes?.length ?? 0)
  const labels = Int32Array.from(raw.labels)
  let largest = 0
  for (const l of labels) largest = Math.max(largest, l)
  return nativeSet(raw.images, {
    labels,
    count: raw.count,
    width: raw.width,
    height: raw.height,
    classes: classes ?? Array.from({ length: largest + 1 }, (_, i) => String(i))
  })
}

/** Reads the four IDX files in `dir`; the internal form of `idx()` with known class names. */
export async function readIdxDir (dir: string, name: string, classes?: readonly string[]): Promise<DataSplit> {
  const missing = (Object.keys(IDX_FILES) as IdxFileKey[]).filter((k) => findIdxFile(dir, k) === undefined)
  if (missing.length > 0) {
    const names = missing.map((k) => `${IDX_FILES[k]}[.gz]`).join(', ')
    throw new SiameseTorchError(`${dir} lacks ${names}`, 'ERR_BAD_FILE', { path: dir })
  }
  const file = (k: IdxFileKey): string => findIdxFile(dir, k) as string
  // Both splits are read at once; when both fail, the train split's error is the one reported,
  // so that the same bad folder always gives the same error.
  const [trainRead, testRead] = await Promise.allSettled([
    readSplit(file('trainImages'), file('trainLabels'), classes),
    readSplit(file('testImages'), file('testLabels'), classes)
  ])
  if (trainRead.status === 'rejected') throw trainRead.reason
  if (testRead.status === 'rejected') throw testRead.reason
  const train = trainRead.value
  const test = testRead.value
  if (train.width !== test.width || train.height !== test.height) {
    throw new SiameseTorchError(`${file('testImages')} holds ${test.width}x${test.height} images but ` +
      `${file('trainImages')} holds ${train.width}x${train.height}`, 'ERR_BAD_FILE', { path: file('testImages') })
  }
  if (classes === undefined && train.classes.length !== test.classes.length) {
    // Name classes by the larger label range so that both splits share one list.
    const shared = train.classes.length > test.classes.length ? train.classes : test.classes
    return { name, train: withFields(train, { classes: shared }), test: withFields(test, { classes: shared }) }
  }
  return { name, train, test }
}

/** Options of `datasets.idx`. */
export interface IdxOptions {
  /** Class names, index = label; labels must be below their count. Default "0", "1", ... */
  classes?: readonly string[]
}

/**
 * Any folder of the four IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
 * `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each gzipped or not), read natively.
 * Malformed files reject with `ERR_BAD_FILE` and the file's path.
 *
 * @example
 * ```ts
 * const { train, test } = await datasets.idx('/usr/share/datasets/fashion-mnist')
 * ```
 */
export async function idx (dir: string, options?: IdxOptions): Promise<DataSplit> {
  const site = callSite()
  const folder = resolve(nonEmptyString(dir, 'dir'))
  const o = optionsObject(options, 'options', ['classes'])
  const classes = o['classes']
  if (classes !== undefined && !isStringArray(classes)) {
    throw invalidArg('classes', 'a non-empty array of class names', classes)
  }
  if (!existsSync(folder) || !statSync(folder).isDirectory()) {
    throw new SiameseTorchError(`${folder} is not a folder`, 'ERR_BAD_FILE', { path: folder })
  }
  const split = await rethrowAtCallSite(readIdxDir(folder, folder, classes), site)
  // With its own class names, the folder alone does not read back the same set.
  return classes === undefined ? { ...split, source: folder } : split
}
