// Omniglot (Lake, Salakhutdinov and Tenenbaum, 2015): handwritten characters of 50 alphabets, 20
// drawings each, in its two published zip archives. Downloaded as MNIST is (download.ts), then
// unzipped with yauzl into a temporary folder beside the target and renamed into place, so that a
// folder under its final name is always complete. Every entry is checked before anything is
// written: no absolute path, drive letter, backslash, `..` or symbolic link; the sizes the archive
// declares are capped up front, and the bytes actually inflated are counted and their CRC-32
// checked, so that a lying header can neither fill the disk nor slip corrupt data through.
import { randomBytes } from 'node:crypto'
import { createWriteStream, existsSync } from 'node:fs'
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises'
import { dirname, join, relative, sep } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { crc32 } from 'node:zlib'

import { openPromise, type Entry, type ZipFile } from 'yauzl'

import { SiameseTorchError, callSite, rethrowAtCallSite } from '../errors.js'
import type { ImageTarget } from '../images.js'
import { integerIn, nonEmptyString, optionsObject } from '../validate.js'
import { pixelStats } from './arrays.js'
import {
  DOWNLOAD_OPTION_NAMES, checkDownloads, downloadMissing, type CheckedDownloads, type DownloadableOptions
} from './catalog.js'
import { assertFits, decodeAll, subfolders, type Listed } from './image-folder.js'
import type { DataSplit, LabelledImages } from './types.js'

/** One of Omniglot's archives: its file name and published MD5. It unzips to a folder named as the file, without `.zip`. */
export interface OmniglotArchive {
  file: string
  md5: string
}

/** Where Omniglot's two archives live and how to check them. */
export interface OmniglotCatalogue {
  name: string
  folder: string
  mirrors: readonly string[]
  /** The training split's archive (the "background" alphabets) and the test split's ("evaluation"). */
  archives: { readonly train: OmniglotArchive, readonly test: OmniglotArchive }
}

/**
 * Omniglot as its authors publish it (github.com/brendenlake/omniglot), with the MD5s torchvision
 * checks: the repository's raw files first, GitHub's own address for them second.
 */
export const OMNIGLOT: OmniglotCatalogue = {
  name: 'omniglot',
  folder: 'omniglot',
  mirrors: [
    'https://raw.githubusercontent.com/brendenlake/omniglot/master/python/',
    'https://github.com/brendenlake/omniglot/raw/master/python/'
  ],
  archives: {
    train: { file: 'images_background.zip', md5: '68d2efa1b9178cc56df9314c21c6e718' },
    test: { file: 'images_evaluation.zip', md5: '6b91aef0f799c5bb55b94e3f2daec811' }
  }
}

/** Omniglot's drawings are 105 x 105, one bit a pixel; they are read as grey bytes, 0 or 255. */
const SIDE = 105
const TARGET: ImageTarget = { width: SIDE, height: SIDE, channels: 1, fit: 'fill' }
/** The two archives are about 9 and 6 MB and inflate to about as much (PNG files compress little). */
const DEFAULT_MAX_UNCOMPRESSED_BYTES = 200_000_000
const EXTRACT_CONCURRENCY = 8
/** Unix file type bits of a zip entry's external attributes (the upper 16 bits). */
const S_IFMT = 0o170000
const S_IFLNK = 0o120000

/** Options of `datasets.omniglot`. */
export interface OmniglotOptions extends DownloadableOptions {
  /**
   * Folder of the two archives and of the folders they unzip to (`images_background/`,
   * `images_evaluation/`). Default: `<dataDir()>/omniglot`.
   */
  root?: string
  /**
   * The most bytes one archive may inflate to, counted both from what its entries declare and as
   * they inflate; past it the archive is refused (`ERR_BAD_FILE`). Default 200,000,000.
   */
  maxUncompressedBytes?: number
}

const OPTION_NAMES = [...DOWNLOAD_OPTION_NAMES, 'maxUncompressedBytes'] as const

/**
 * The alphabet of an Omniglot class: the part of its name before the first `/` (`'Latin'` for
 * `'Latin/character01'`). A name without `/` is its own alphabet.
 *
 * @example
 * ```ts
 * const { test } = await datasets.omniglot()
 * const alphabets = new Set(test.classes.map(datasets.alphabetOf))   // 20 alphabets
 * ```
 */
export function alphabetOf (className: string): string {
  const name = nonEmptyString(className, 'className')
  const slash = name.indexOf('/')
  return slash < 0 ? name : name.slice(0, slash)
}

/** A readable but unusable archive, named with the reason. */
function badArchive (zip: string, reason: string, cause?: unknown): SiameseTorchError {
  return new SiameseTorchError(`${zip}: ${reason}`, 'ERR_BAD_FILE', cause === undefined ? { path: zip } : { path: zip, cause })
}

/** Why an entry name is refused (yauzl refuses the same ones first; this holds whatever it lets by). */
function unsafeName (name: string): string | undefined {
  if (name.startsWith('/')) return 'an absolute path'
  if (/^[A-Za-z]:/.test(name)) return 'a drive letter'
  if (name.includes('\\')) return 'a backslash'
  if (name.includes('\0')) return 'a NUL character'
  if (name.split('/').includes('..')) return 'a .. segment'
  return undefined
}

/** yauzl's refusals of a file name ("absolute path: x", "invalid relative path: x", ...). */
const YAUZL_UNSAFE_NAME = /^(?:absolute path|invalid relative path|invalid characters in fileName): /

/** Errors of yauzl and the file system as ERR_BAD_FILE naming the archive. */
function asBadArchive (zip: string, err: unknown): SiameseTorchError {
  if (err instanceof SiameseTorchError) return err
  const message = err instanceof Error ? err.message : String(err)
  if (YAUZL_UNSAFE_NAME.test(message)) return badArchive(zip, `refused: an unsafe entry name (${message})`, err)
  return badArchive(zip, `not a readable zip archive (${message})`, err)
}

/** An entry to extract: `<top>/<alphabet>/<character>/<file>.png`. */
interface Taken {
  entry: Entry
  alphabet: string
  character: string
  file: string
}

/**
 * Reads the central directory: refuses any unsafe entry and archives whose entries declare more
 * than `cap` bytes, and keeps the PNG files at `<top>/<alphabet>/<character>/`.
 */
async function entriesToTake (zipFile: ZipFile, zip: string, top: string, cap: number): Promise<Taken[]> {
  const taken: Taken[] = []
  let declared = 0
  for await (const entry of zipFile.eachEntry()) {
    const name = entry.fileName
    const unsafe = unsafeName(name)
    if (unsafe !== undefined) throw badArchive(zip, `refused: the entry "${name}" has ${unsafe}`)
    if (((entry.externalFileAttributes >>> 16) & S_IFMT) === S_IFLNK) {
      throw badArchive(zip, `refused: the entry "${name}" is a symbolic link`)
    }
    const parts = name.split('/')
    if (parts.length !== 4 || parts[0] !== top || !/\.png$/i.test(parts[3]) || parts.some((p) => p === '' || p === '.' || p.startsWith('.'))) continue
    declared += entry.uncompressedSize
    if (declared > cap) {
      throw badArchive(zip, `refused: its entries declare more than ${cap} bytes uncompressed (the cap, maxUncompressedBytes), at "${name}"`)
    }
    taken.push({ entry, alphabet: parts[1], character: parts[2], file: parts[3] })
  }
  if (taken.length === 0) throw badArchive(zip, `holds no ${top}/<alphabet>/<character>/*.png`)
  return taken
}

/** Writes the entries into `dir`, `EXTRACT_CONCURRENCY` at a time, counting and checking what inflates. */
async function writeEntries (zipFile: ZipFile, zip: string, taken: readonly Taken[], dir: string, cap: number): Promise<void> {
  let inflated = 0
  const folders = new Map<string, Promise<unknown>>()
  const writeOne = async ({ entry, alphabet, character, file }: Taken): Promise<void> => {
    const folder = join(dir, alphabet, character)
    const target = join(folder, file)
    if (relative(dir, target).split(sep).length !== 3) throw badArchive(zip, `refused: the entry "${entry.fileName}" leaves its folder`)
    let folderMade = folders.get(folder)
    if (folderMade === undefined) {
      folderMade = mkdir(folder, { recursive: true })
      folders.set(folder, folderMade)
    }
    await folderMade
    let bytes = 0
    let crc = 0
    const meter = new Transform({
      transform (chunk: Buffer, _encoding, done) {
        bytes += chunk.length
        inflated += chunk.length
        crc = crc32(chunk, crc)
        if (bytes > entry.uncompressedSize) {
          done(badArchive(zip, `refused: the entry "${entry.fileName}" inflates past the ${entry.uncompressedSize} bytes it declares`))
        } else if (inflated > cap) {
          done(badArchive(zip, `refused: it inflates past ${cap} bytes (the cap, maxUncompressedBytes), at "${entry.fileName}"`))
        } else {
          done(null, chunk)
        }
      },
      flush (done) {
        if (bytes !== entry.uncompressedSize || crc !== entry.crc32) {
          done(badArchive(zip, `the entry "${entry.fileName}" is corrupt (${bytes} bytes of ${entry.uncompressedSize}, ` +
            `CRC-32 ${crc.toString(16)}, expected ${entry.crc32.toString(16)})`))
        } else {
          done()
        }
      }
    })
    try {
      // 'wx': an entry twice under one name is refused rather than written over.
      await pipeline(await zipFile.openReadStreamPromise(entry), meter, createWriteStream(target, { flags: 'wx' }))
    } catch (err) {
      if (err instanceof SiameseTorchError) throw err
      throw badArchive(zip, `the entry "${entry.fileName}" could not be unzipped (${err instanceof Error ? err.message : String(err)})`, err)
    }
  }
  let next = 0
  const workers = Array.from({ length: Math.min(EXTRACT_CONCURRENCY, taken.length) }, async () => {
    try {
      while (next < taken.length) await writeOne(taken[next++])
    } catch (err) {
      next = taken.length // the other workers stop after their entry
      throw err
    }
  })
  // Every worker settled before the caller removes the folder: none is still writing into it.
  const failed = (await Promise.allSettled(workers)).find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed !== undefined) throw asBadArchive(zip, failed.reason)
}

/**
 * Unzips the entries of `zip` under `<top>/` into the folder `dest`: into a temporary folder
 * beside it first, renamed into place once complete; on failure the temporary folder is removed.
 */
async function extractArchive (zip: string, top: string, dest: string, cap: number): Promise<void> {
  const temp = join(dirname(dest), `.${top}.${randomBytes(6).toString('hex')}.part`)
  try {
    const zipFile = await openPromise(zip, { lazyEntries: true, autoClose: false, strictFileNames: true, validateEntrySizes: true })
    // Errors while entries are read reject the reading; one after (closing the file) must not crash the process.
    zipFile.on('error', () => {})
    try {
      const taken = await entriesToTake(zipFile, zip, top, cap)
      await mkdir(temp)
      await writeEntries(zipFile, zip, taken, temp, cap)
    } finally {
      zipFile.close()
    }
    try {
      await rename(temp, dest)
    } catch (err) {
      // Another process unzipped the same archive meanwhile: its folder is as good as ours.
      if (!(await isFolder(dest))) throw err
    }
  } catch (err) {
    throw asBadArchive(zip, err)
  } finally {
    await rm(temp, { recursive: true, force: true })
  }
}

async function isFolder (path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory()
  } catch {
    return false
  }
}

/** The classes (`<alphabet>/<character>`, sorted) of an unzipped split and its PNG files. */
async function listSplit (dir: string): Promise<{ classes: string[], listed: Listed[] }> {
  const classes: string[] = []
  for (const alphabet of await subfolders(dir)) {
    for (const character of await subfolders(join(dir, alphabet))) classes.push(`${alphabet}/${character}`)
  }
  classes.sort()
  if (classes.length === 0) {
    throw new SiameseTorchError(`${dir} holds no <alphabet>/<character>/*.png`, 'ERR_BAD_FILE', { path: dir })
  }
  const listed: Listed[] = []
  for (const [label, name] of classes.entries()) {
    const folder = join(dir, ...name.split('/'))
    const files = (await readdir(folder, { withFileTypes: true }))
      .filter((e) => e.isFile() && !e.name.startsWith('.') && /\.png$/i.test(e.name)).map((e) => e.name).sort()
    if (files.length === 0) throw new SiameseTorchError(`${folder} holds no .png drawings`, 'ERR_BAD_FILE', { path: folder })
    for (const file of files) listed.push({ file: join(folder, file), label })
  }
  return { classes, listed }
}

async function readSplit (dir: string): Promise<LabelledImages> {
  const { classes, listed } = await listSplit(dir)
  assertFits(dir, listed.length, TARGET)
  const [set] = await decodeAll([listed], classes, TARGET, () => {})
  return set
}

/**
 * Makes sure each split's folder is there: unzips an archive that is there, downloads (when asked)
 * those that are not. An archive downloaded by this call that cannot be unzipped is removed again.
 */
async function prepareFolders (catalogue: OmniglotCatalogue, c: CheckedDownloads, cap: number): Promise<string[]> {
  const archives = [catalogue.archives.train, catalogue.archives.test]
  const tops = archives.map((a) => a.file.replace(/\.zip$/i, ''))
  const folders = tops.map((top) => join(c.root, top))
  const ready = await Promise.all(folders.map(isFolder))
  const missing = archives.filter((a, i) => !ready[i] && !existsSync(join(c.root, a.file)))
  const downloaded = await downloadMissing(catalogue.name, archives, missing, c, catalogue.mirrors)
  for (const [i, archive] of archives.entries()) {
    if (ready[i]) continue
    const zip = join(c.root, archive.file)
    try {
      await extractArchive(zip, tops[i], folders[i], cap)
    } catch (err) {
      if (downloaded.includes(zip)) {
        await rm(zip, { force: true })
      } else if (err instanceof SiameseTorchError) {
        err.message += '; delete or replace it (it was there before this call, so it is kept)'
      }
      throw err
    }
  }
  return folders
}

/** Loads Omniglot as `catalogue` describes it (tests pass their own), downloading what is missing when asked. */
export async function loadOmniglot (catalogue: OmniglotCatalogue, options: OmniglotOptions | undefined): Promise<DataSplit> {
  const o = optionsObject(options, 'options', OPTION_NAMES)
  const c = checkDownloads(o, catalogue.folder, catalogue.mirrors)
  const cap = o['maxUncompressedBytes'] === undefined
    ? DEFAULT_MAX_UNCOMPRESSED_BYTES
    : integerIn(o['maxUncompressedBytes'], 'maxUncompressedBytes', 1)
  const [trainDir, testDir] = await prepareFolders(catalogue, c, cap)
  const train = await readSplit(trainDir)
  const test = await readSplit(testDir)
  const split: DataSplit = { name: catalogue.name, train, test, stats: pixelStats(train) }
  // Read again by name only from the folder the name stands for.
  return c.defaultRoot ? { ...split, source: catalogue.name } : split
}

/**
 * Omniglot (Lake et al.), in its standard split: `train` is the "background" set (964 characters of
 * 30 alphabets), `test` the "evaluation" set (659 characters of 20 other alphabets), 20 drawings a
 * character, 105 x 105 grey, white background (255) and black strokes (0). The two splits have
 * their own classes, none shared: each split's `classes` are its characters, named
 * `"<alphabet>/<character folder>"` (`"Latin/character01"`) and sorted; `datasets.alphabetOf`
 * gives a class's alphabet. With `download: true` the two archives are fetched from the authors'
 * repository, checked against their published MD5s, and unzipped once into `root`; later calls read
 * the unzipped folders. `stats` holds the training drawings' statistics, with which `train`
 * normalises.
 *
 * @example
 * ```ts
 * const { train, test } = await datasets.omniglot({ download: true })
 * console.log(train.classes.length, test.classes.length)   // 964 659
 * console.log(datasets.alphabetOf(test.classes[test.labels[0]]))
 * ```
 */
export async function omniglot (options?: OmniglotOptions): Promise<DataSplit> {
  return rethrowAtCallSite(loadOmniglot(OMNIGLOT, options), callSite())
}
