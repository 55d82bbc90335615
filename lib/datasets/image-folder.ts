import { existsSync } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'

import { SiameseTorchError, callSite, rethrowAtCallSite } from '../errors.js'
import { decodeImage } from '../images.js'
import { imageFolderSettings, read, type Values } from '../contract.js'
import { nonEmptyString, optionsObject } from '../validate.js'
import type { DataSplit, LabelledImages } from './types.js'

/** Options of `datasets.imageFolder`. */
export type ImageFolderOptions = Partial<Values<typeof imageFolderSettings>>

const IMAGE_FILE = /\.(png|jpe?g)$/i
const DECODE_CONCURRENCY = 8

interface Listed {
  file: string
  label: number
}

async function subfolders (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true })
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort()
}

async function imagesIn (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true })
  return entries.filter((e) => e.isFile() && IMAGE_FILE.test(e.name)).map((e) => join(dir, e.name)).sort()
}

async function decodeAll (listed: Listed[], classes: string[], width: number, height: number): Promise<LabelledImages> {
  const images = new Uint8Array(listed.length * width * height)
  const labels = new Int32Array(listed.length)
  let next = 0
  const workers = Array.from({ length: Math.min(DECODE_CONCURRENCY, listed.length) }, async () => {
    while (next < listed.length) {
      const i = next++
      const { file, label } = listed[i]
      images.set(await decodeImage(file, width, height), i * width * height)
      labels[i] = label
    }
  })
  await Promise.all(workers)
  return { images, labels, count: listed.length, width, height, classes }
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

async function load (dir: string, width: number, height: number, testFraction: number): Promise<DataSplit> {
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
      throw new SiameseTorchError(`${join(dir, name)} holds no PNG or JPEG images`, 'ERR_BAD_FILE', { path: join(dir, name) })
    }
  }
  if (train.length === 0 || test.length === 0) {
    throw new SiameseTorchError(`${dir} holds too few images to give both train and test some ` +
      `(${train.length} train, ${test.length} test)`, 'ERR_BAD_FILE', { path: dir })
  }
  const [trainSet, testSet] = await Promise.all([
    decodeAll(train, classes, width, height),
    decodeAll(test, classes, width, height)
  ])
  return { name: dir, train: trainSet, test: testSet }
}

/**
 * Every image of a folder with one sub-folder a class (`dir/<class>/*.png`), unsplit: a support
 * set for one-shot classification, for instance. Classes are the folder names, sorted.
 */
export async function classFolderSet (dir: string, width: number, height: number): Promise<LabelledImages> {
  const folder = resolve(dir)
  if (!existsSync(folder) || !(await stat(folder)).isDirectory()) {
    throw new SiameseTorchError(`${folder} is not a folder`, 'ERR_BAD_FILE', { path: folder })
  }
  const classes = await subfolders(folder)
  const listed = await classFolder(folder, classes)
  if (listed.length === 0) {
    throw new SiameseTorchError(`${folder} holds no class folders with PNG or JPEG images`, 'ERR_BAD_FILE', { path: folder })
  }
  return decodeAll(listed, classes, width, height)
}

/**
 * A folder of PNG/JPEG images, one sub-folder a class (`dir/<class>/*.png`), or already split
 * (`dir/train/<class>/...` and `dir/test/<class>/...`). Images are decoded with sharp, turned to
 * grayscale and resized to `width` x `height`. Classes are the folder names, sorted.
 *
 * @example
 * ```ts
 * const { train, test } = await datasets.imageFolder('./signatures', { width: 64, height: 64 })
 * ```
 */
export async function imageFolder (dir: string, options?: ImageFolderOptions): Promise<DataSplit> {
  const site = callSite()
  const folder = resolve(nonEmptyString(dir, 'dir'))
  const o = optionsObject(options, 'options', ['width', 'height', 'testFraction'])
  const width = read(imageFolderSettings.width, o['width'], 'width')
  const height = read(imageFolderSettings.height, o['height'], 'height')
  const testFraction = read(imageFolderSettings.testFraction, o['testFraction'], 'testFraction')
  const split = await rethrowAtCallSite(load(folder, width, height, testFraction), site)
  // A resume reads the folder again at the model's size, with the default split.
  return testFraction === imageFolderSettings.testFraction.default ? { ...split, source: folder } : split
}
