import { existsSync, readFileSync } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { freemem } from 'node:os'
import { join, resolve } from 'node:path'

import { SiameseTorchError, callSite, rethrowAtCallSite } from '../errors.js'
import { decodeImage, isColourImage, type ImageTarget } from '../images.js'
import { imageFolderSettings, read, type Values } from '../contract.js'
import { functionOption, nonEmptyString, optionsObject } from '../validate.js'
import { pixelStats } from './arrays.js'
import { createStore, nativeSet } from './native-pixels.js'
import type { DataSplit, LabelledImages } from './types.js'

/** How far `datasets.imageFolder` has got: `done` of `total` images decoded (train and test together). */
export interface ImageFolderProgress {
  done: number
  total: number
}

/** Options of `datasets.imageFolder`. */
export type ImageFolderOptions = Partial<Values<typeof imageFolderSettings>> & {
  /**
   * Called as decoding advances, once for each whole percent (at most 101 times): first with
   * `done` 0, last with `done === total`.
   */
  onProgress?: (event: ImageFolderProgress) => void
}

const IMAGE_FILE = /\.(png|jpe?g|webp|gif|tiff?|avif)$/i
const FORMATS = 'PNG, JPEG, WebP, GIF, TIFF, AVIF'
const DECODE_CONCURRENCY = 8

/** An image file and its label. */
export interface Listed {
  file: string
  label: number
}

/** The sub-folders of `dir` whose names do not start with a dot, sorted. */
export async function subfolders (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true })
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort()
}

async function imagesIn (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true })
  return entries.filter((e) => e.isFile() && IMAGE_FILE.test(e.name)).map((e) => join(dir, e.name)).sort()
}

/** Whether any of `files` has colour, reading headers `DECODE_CONCURRENCY` at a time; stops at the first. */
async function anyColour (files: readonly string[]): Promise<boolean> {
  let next = 0
  let found = false
  const workers = Array.from({ length: Math.min(DECODE_CONCURRENCY, files.length) }, async () => {
    while (!found && next < files.length) {
      if (await isColourImage(files[next++])) found = true
    }
  })
  await Promise.all(workers)
  return found
}

const MEGABYTE = 1e6

/** Bytes as megabytes with three significant digits: `0.001`, `12.3`, `4560`. */
function megabytes (bytes: number): string {
  return String(Number((bytes / MEGABYTE).toPrecision(3)))
}

/** A number of bytes in a cgroup file, or undefined (no such file, or `max`). */
function cgroupBytes (file: string): number | undefined {
  try {
    const text = readFileSync(file, 'utf8').trim()
    return /^\d+$/.test(text) ? Number(text) : undefined
  } catch {
    return undefined
  }
}

/**
 * Memory free for this process: the system's free memory, or less where a cgroup (a container)
 * limits it, or where SIAMESE_TORCH_MEMORY_LIMIT_BYTES does (for tests).
 */
function availableMemory (): number {
  let available = freemem()
  const limit = cgroupBytes('/sys/fs/cgroup/memory.max')
  if (limit !== undefined) available = Math.min(available, Math.max(0, limit - (cgroupBytes('/sys/fs/cgroup/memory.current') ?? 0)))
  const forced = process.env['SIAMESE_TORCH_MEMORY_LIMIT_BYTES']
  if (forced !== undefined && /^\d+$/.test(forced.trim())) available = Math.min(available, Number(forced.trim()))
  return available
}

/** Refuses, before decoding anything, `count` images that would not fit in memory. */
export function assertFits (dir: string, count: number, target: ImageTarget): void {
  const { width, height, channels } = target
  const needed = count * width * height * channels
  const available = availableMemory()
  if (needed > available) {
    throw new SiameseTorchError(`${dir}: ${count} images of ${width}x${height}x${channels} need ${megabytes(needed)} MB of memory, ` +
      `more than the ${megabytes(available)} MB available`, 'ERR_NATIVE_OOM', { path: dir })
  }
}

/** Calls `onProgress` with `done` 0, then each time `done` passes a whole percent of `total`. */
function progressReporter (total: number, onProgress: ((event: ImageFolderProgress) => void) | undefined): () => void {
  if (onProgress === undefined) return () => {}
  let done = 0
  let percent = 0
  onProgress({ done, total })
  return () => {
    done++
    const now = Math.floor(done * 100 / total)
    if (now > percent) {
      percent = now
      onProgress({ done, total })
    }
  }
}

/**
 * The images of each list decoded into one native store each (pixels held natively: see
 * native-pixels.ts; no per-image arrays kept), `DECODE_CONCURRENCY` images at a time over all the
 * lists together.
 */
export async function decodeAll (lists: Listed[][], classes: string[], target: ImageTarget, advance: () => void): Promise<LabelledImages[]> {
  const { width, height, channels, fit } = target
  const parts = lists.map((listed) => ({ store: createStore(listed.length, width, height, channels), labels: new Int32Array(listed.length) }))
  const jobs = lists.flatMap((listed, s) => listed.map((item, i) => ({ ...item, s, i })))
  let next = 0
  const workers = Array.from({ length: Math.min(DECODE_CONCURRENCY, jobs.length) }, async () => {
    try {
      while (next < jobs.length) {
        const { file, label, s, i } = jobs[next++]
        const part = parts[s]
        part.store.set(i, await decodeImage(file, target))
        part.labels[i] = label
        advance()
      }
    } catch (err) {
      next = jobs.length // the other workers stop at their next image
      throw err
    }
  })
  await Promise.all(workers)
  return parts.map(({ store, labels }) => {
    store.freeze()
    return nativeSet(store, { labels, count: labels.length, width, height, channels, fit, classes })
  })
}

async function classFolder (dir: string, classes: string[]): Promise<Listed[]> {
  const listed: Listed[] = []
  for (const [label, name] of classes.entries()) {
    const folder = join(dir, name)
    if (!existsSync(folder)) continue
    for (const file of await imagesIn(folder)) listed.push({ file, label })
  }
  return listed
}

/** What `imageFolder` reads a folder with, once checked; `channels` undefined: from the images. */
interface FolderOptions {
  width: number
  height: number
  channels: 1 | 3 | undefined
  fit: ImageTarget['fit']
  testFraction: number
  onProgress: ((event: ImageFolderProgress) => void) | undefined
}

async function load (dir: string, options: FolderOptions): Promise<DataSplit> {
  const { width, height, fit, testFraction } = options
  if (!existsSync(dir) || !(await stat(dir)).isDirectory()) {
    throw new SiameseTorchError(`${dir} is not a folder`, 'ERR_BAD_FILE', { path: dir })
  }
  const top = await subfolders(dir)
  let train: Listed[]
  let test: Listed[]
  let classes: string[]
  if (top.includes('train') && top.includes('test')) {
    // dir/train/<class>/*.png and dir/test/<class>/*.png
    classes = [...new Set([...await subfolders(join(dir, 'train')), ...await subfolders(join(dir, 'test'))])].sort()
    train = await classFolder(join(dir, 'train'), classes)
    test = await classFolder(join(dir, 'test'), classes)
  } else {
    // dir/<class>/*.png, split per class: image k is test when floor((k+1)f) > floor(kf), which
    // spreads the test images evenly through each class (f = 0.2: every fifth).
    classes = top
    train = []
    test = []
    const seen = new Array<number>(classes.length).fill(0)
    for (const item of await classFolder(dir, classes)) {
      const k = seen[item.label] ?? 0
      seen[item.label] = k + 1
      const toTest = Math.floor((k + 1) * testFraction) > Math.floor(k * testFraction)
      ;(toTest ? test : train).push(item)
    }
  }
  if (classes.length === 0) {
    throw new SiameseTorchError(`${dir} has no class folders (expected ${dir}/<class>/*.png or train/ and test/)`,
      'ERR_BAD_FILE', { path: dir })
  }
  for (const [label, name] of classes.entries()) {
    if (!train.some((x) => x.label === label) && !test.some((x) => x.label === label)) {
      throw new SiameseTorchError(`${join(dir, name)} holds no images (${FORMATS})`, 'ERR_BAD_FILE', { path: join(dir, name) })
    }
  }
  if (train.length === 0 || test.length === 0) {
    throw new SiameseTorchError(`${dir} holds too few images to give both train and test some ` +
      `(${train.length} train, ${test.length} test)`, 'ERR_BAD_FILE', { path: dir })
  }
  const all = [...train, ...test]
  const channels = options.channels ?? (await anyColour(all.map((x) => x.file)) ? 3 : 1)
  const target: ImageTarget = { width, height, channels, fit }
  assertFits(dir, all.length, target)
  const [trainSet, testSet] = await decodeAll([train, test], classes, target, progressReporter(all.length, options.onProgress))
  return { name: dir, train: trainSet, test: testSet, stats: pixelStats(trainSet) }
}

/**
 * Every image of a folder with one sub-folder a class (`dir/<class>/*.png`), unsplit, decoded to
 * `target` (a model's size, channels and fit): a support set for one-shot classification, for
 * instance. Classes are the folder names, sorted.
 */
export async function classFolderSet (dir: string, target: ImageTarget): Promise<LabelledImages> {
  const folder = resolve(dir)
  if (!existsSync(folder) || !(await stat(folder)).isDirectory()) {
    throw new SiameseTorchError(`${folder} is not a folder`, 'ERR_BAD_FILE', { path: folder })
  }
  const classes = await subfolders(folder)
  const listed = await classFolder(folder, classes)
  if (listed.length === 0) {
    throw new SiameseTorchError(`${folder} holds no class folders with images (${FORMATS})`, 'ERR_BAD_FILE', { path: folder })
  }
  assertFits(folder, listed.length, target)
  const [set] = await decodeAll([listed], classes, target, () => {})
  return set
}

/**
 * A folder of images (PNG, JPEG, WebP, GIF, TIFF or AVIF), one sub-folder a class
 * (`dir/<class>/*.png`), or already split (`dir/train/<class>/...` and `dir/test/<class>/...`).
 * Images are decoded with sharp, turned upright by their EXIF orientation, laid on black where
 * transparent, resized to `width` x `height` with `fit`, and kept gray or RGB (`channels`; by
 * default RGB when any image of the folder has colour). Classes are the folder names, sorted.
 * Refused before decoding when the pixels would not fit in the memory available.
 *
 * @example
 * ```ts
 * const { train, test } = await datasets.imageFolder('./signatures', { width: 64, height: 64 })
 * const photos = await datasets.imageFolder('./photos', {
 *   width: 96, height: 96, channels: 3, fit: 'cover',
 *   onProgress: ({ done, total }) => console.log(`${done}/${total}`)
 * })
 * ```
 */
export async function imageFolder (dir: string, options?: ImageFolderOptions): Promise<DataSplit> {
  const site = callSite()
  const folder = resolve(nonEmptyString(dir, 'dir'))
  const o = optionsObject(options, 'options', ['width', 'height', 'channels', 'fit', 'testFraction', 'onProgress'])
  const checked: FolderOptions = {
    width: read(imageFolderSettings.width, o['width'], 'width'),
    height: read(imageFolderSettings.height, o['height'], 'height'),
    channels: read(imageFolderSettings.channels, o['channels'], 'channels'),
    fit: read(imageFolderSettings.fit, o['fit'], 'fit'),
    testFraction: read(imageFolderSettings.testFraction, o['testFraction'], 'testFraction'),
    onProgress: o['onProgress'] === undefined ? undefined : functionOption<(event: ImageFolderProgress) => void>(o['onProgress'], 'onProgress')
  }
  const split = await rethrowAtCallSite(load(folder, checked), site)
  // A resume reads the folder again with the model's size and channels and the fit its run
  // recorded: the same data, unless the split was not the default one.
  return checked.testFraction === imageFolderSettings.testFraction.default ? { ...split, source: folder } : split
}
