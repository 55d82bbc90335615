// MNIST and Fashion-MNIST: where their four IDX files live, their published MD5s, their classes.
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'

import { dataDir } from '../cache.js'
import { SiameseTorchError, callSite, rethrowAtCallSite } from '../errors.js'
import { downloadSettings, read } from '../contract.js'
import { functionOption, invalidArg, isStringArray, nonEmptyString, optionsObject } from '../validate.js'
import { downloadFile, stderrProgress, type DownloadOptions, type DownloadProgress } from './download.js'
import { DIGITS } from './embedded.js'
import { IDX_FILES, findIdxFile, readIdxDir, type IdxFileKey } from './idx.js'
import type { DataSplit } from './types.js'

/** Where a downloadable data set lives and how to check its files. */
export interface Catalogue {
  name: string
  folder: string
  mirrors: readonly string[]
  md5: Record<IdxFileKey, string>
  classes: readonly string[]
}

/** MNIST, as torchvision lists it: its maintained mirror first, the original site last. */
export const MNIST: Catalogue = {
  name: 'mnist',
  folder: 'mnist',
  mirrors: [
    'https://ossci-datasets.s3.amazonaws.com/mnist/',
    'https://storage.googleapis.com/cvdf-datasets/mnist/',
    'http://yann.lecun.com/exdb/mnist/'
  ],
  md5: {
    trainImages: 'f68b3c2dcbeaaa9fbdd348bbdeb94873',
    trainLabels: 'd53e105ee54ea40749a09fcbcd1e9432',
    testImages: '9fb629c4189551a2d022fa330f9573f3',
    testLabels: 'ec29112dd5afa0611ce80d1b7f02629c'
  },
  classes: DIGITS
}

/** Fashion-MNIST (Zalando Research), with the MD5s of its README. */
export const FASHION_MNIST: Catalogue = {
  name: 'fashion-mnist',
  folder: 'fashion-mnist',
  mirrors: [
    'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
    'https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/'
  ],
  md5: {
    trainImages: '8d4fb7e6c68d591d4c3dfef9ec88bf0d',
    trainLabels: '25c81989df183df01b3e8a0aad5dffbe',
    testImages: 'bef4ecab320f06d8554ea6380940ec79',
    testLabels: 'bb300cfdad3c16e7a12a480ee83cd310'
  },
  classes: ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']
}

/** Options of `datasets.mnist` and `datasets.fashionMnist`. */
export interface DownloadableOptions {
  /** Folder of the four IDX files. Default: `<dataDir()>/mnist` or `<dataDir()>/fashion-mnist`. */
  root?: string
  /** Download the files that are missing. Default false: no network unless asked. */
  download?: boolean
  /** Base URLs to download from, in order. Default: the data set's known mirrors. */
  mirrors?: readonly string[]
  /** Tries per mirror. Default 3. */
  retries?: number
  /** Abort an attempt after this long without data (ms). Default 30000. */
  timeoutMs?: number
  /** First back-off between tries (ms), doubling. Default 1000. */
  backoffMs?: number
  /** Download progress. Default: a line on stderr when it is a terminal, else silence. */
  onProgress?: (progress: DownloadProgress) => void
  /** Aborts a download (rejects with ABORT_ERR; nothing is left half written). */
  signal?: AbortSignal
}

function gzName (key: IdxFileKey): string {
  return `${IDX_FILES[key]}.gz`
}

/** The options of `DownloadableOptions`, for `optionsObject`. */
export const DOWNLOAD_OPTION_NAMES = ['root', 'download', 'mirrors', 'retries', 'timeoutMs', 'backoffMs', 'onProgress', 'signal'] as const

/** `DownloadableOptions` checked, with the defaults filled in. */
export interface CheckedDownloads extends DownloadOptions {
  root: string
  /** Whether `root` is the set's default folder: a set is read again by name only from there. */
  defaultRoot: boolean
  download: boolean
}

/** Checks the download options of a set kept in `<dataDir()>/<folder>` and served by `mirrors`. */
export function checkDownloads (o: Record<string, unknown>, folder: string, mirrors: readonly string[]): CheckedDownloads {
  const defaultRoot = resolve(join(dataDir(), folder))
  const root = resolve(o['root'] === undefined ? defaultRoot : nonEmptyString(o['root'], 'root'))
  const download = read(downloadSettings.download, o['download'], 'download')
  const given = o['mirrors'] ?? mirrors
  if (!isStringArray(given)) {
    throw invalidArg('mirrors', 'a non-empty array of base URLs', given)
  }
  const retries = read(downloadSettings.retries, o['retries'], 'retries')
  const timeoutMs = read(downloadSettings.timeoutMs, o['timeoutMs'], 'timeoutMs')
  const backoffMs = read(downloadSettings.backoffMs, o['backoffMs'], 'backoffMs')
  const onProgress = o['onProgress'] === undefined
    ? (process.stderr.isTTY ? stderrProgress : undefined)
    : functionOption<(p: DownloadProgress) => void>(o['onProgress'], 'onProgress')
  const signal = o['signal']
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArg('signal', 'an AbortSignal', signal)
  return { root, defaultRoot: root === defaultRoot, download, mirrors: given, retries, timeoutMs, backoffMs, onProgress, signal }
}

/** A file of a downloadable set and its published MD5. */
export interface PublishedFile {
  file: string
  md5: string
}

const COUNTS = ['no', 'one', 'two', 'three', 'four']

/**
 * Downloads `missing` (some of `files`, the set's files) into `c.root`. Without `download: true`,
 * or when every mirror fails, the error names the files, their MD5s and where to put them.
 */
export async function downloadMissing (name: string, files: readonly PublishedFile[], missing: readonly PublishedFile[],
  c: CheckedDownloads, knownMirrors: readonly string[]): Promise<string[]> {
  const { root } = c
  if (missing.length > 0 && !c.download) {
    throw new SiameseTorchError(
      `${name} is not in ${root}: missing ${missing.map((f) => f.file).join(', ')}. ` +
        `Pass { download: true } to fetch it (${knownMirrors[0]}), or put the ${COUNTS[files.length] ?? files.length} files ` +
        `${files.map((f) => f.file).join(', ')} there by hand.`,
      'ERR_BAD_FILE', { path: root })
  }
  const saved: string[] = []
  for (const { file, md5 } of missing) {
    try {
      saved.push(await downloadFile(file, md5, root, c))
    } catch (err) {
      if (err instanceof SiameseTorchError && err.code === 'ERR_DOWNLOAD') {
        throw new SiameseTorchError(
          `${err.message}\nOffline, or every mirror failed. Download these files by hand and put them in ${root}:\n` +
            files.map((f) => `  ${f.file} (MD5 ${f.md5})${existsSync(join(root, f.file)) ? ' - already there' : ''}`).join('\n') +
            `\nfrom ${knownMirrors.join(' or ')}`,
          'ERR_DOWNLOAD', { path: root, cause: err })
      }
      throw err
    }
  }
  return saved
}

/** Loads a catalogued data set from its folder, downloading what is missing when asked. */
export async function loadCatalogue (catalogue: Catalogue, options: DownloadableOptions | undefined): Promise<DataSplit> {
  const c = checkDownloads(optionsObject(options, 'options', DOWNLOAD_OPTION_NAMES), catalogue.folder, catalogue.mirrors)
  const keys = Object.keys(IDX_FILES) as IdxFileKey[]
  const files = keys.map((k) => ({ file: gzName(k), md5: catalogue.md5[k] }))
  const missing = files.filter((_, i) => findIdxFile(c.root, keys[i]) === undefined)
  await downloadMissing(catalogue.name, files, missing, c, catalogue.mirrors)
  const split = await readIdxDir(c.root, catalogue.name, catalogue.classes)
  // Read again by name only from the folder the name stands for.
  return c.defaultRoot ? { ...split, source: catalogue.name } : split
}

/**
 * MNIST (60,000 + 10,000 handwritten digits) from IDX files in `root`; with `download: true` the
 * missing files are fetched from the mirrors, checked against their published MD5s and only then
 * saved. Without the network, put the four `.gz` files in `root` by hand.
 *
 * @example
 * ```ts
 * const { train, test } = await datasets.mnist({ download: true })
 * ```
 */
export async function mnist (options?: DownloadableOptions): Promise<DataSplit> {
  return rethrowAtCallSite(loadCatalogue(MNIST, options), callSite())
}

/**
 * Fashion-MNIST (60,000 + 10,000 clothing images, 10 classes), as `mnist()`.
 *
 * @example
 * ```ts
 * const { train } = await datasets.fashionMnist({ root: '/usr/share/datasets/fashion-mnist' })
 * console.log(train.classes[train.labels[0]])
 * ```
 */
export async function fashionMnist (options?: DownloadableOptions): Promise<DataSplit> {
  return rethrowAtCallSite(loadCatalogue(FASHION_MNIST, options), callSite())
}
