// Galleries: labelled images enrolled once, then searched by new images (identify: the nearest
// items; classify: the nearest labels). Each gallery is one SQLite database (better-sqlite3, in WAL
// mode, every enrolment one transaction), holding per item its label, the SHA-256 of the source
// image, the embedding, and the image at the model's input size (PNG) for re-embedding and
// display; and, once, the fingerprint of the model that made the embeddings. The embeddings are
// mirrored in memory in a native index (native/core/gallery_index.h) and searched exactly there.
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import Database from 'better-sqlite3'
import sharp from 'sharp'
import { binding, type NativeIndex } from './binding.js'
import { SiameseTorchError } from './errors.js'
import type { ImageInput } from './inputs.js'
import { modelPixels, searchIndex, type SiameseModel } from './model.js'
import { integerIn, invalidArg, isPlainObject, nonEmptyString } from './validate.js'

/** An enrolled image. */
export interface GalleryItem {
  /** Stable: never reused, also after the item is removed. */
  id: number
  label: string
  /** SHA-256 of the image as given (its file's or buffer's bytes; raw pixels: their bytes), hex. */
  sha256: string
  /** When it was enrolled, ISO 8601. */
  created: string
}

/** A gallery item near a query. */
export interface GalleryMatch {
  id: number
  label: string
  /** P(same) of the query and the item, as `model.compare` gives it. */
  pSame: number
  /** Their embeddings' Euclidean distance. */
  distance: number
  /** The model's call on the pair, by its threshold (as `compare`'s `same`). */
  same: boolean
}

/** A label among a query's nearest items. */
export interface GalleryClass {
  label: string
  /** The best P(same) of the query with this label's items among the neighbours. */
  score: number
  /** How many of the neighbours carry this label. */
  count: number
  /** Those neighbours, nearest first. */
  examples: GalleryMatch[]
}

/** The verdict on one query. */
export interface GalleryClassification {
  /** The best label: that of the nearest item; undefined for an empty gallery. */
  label: string | undefined
  /** Whether the model calls the query and that nearest item the same: false for a stranger. */
  known: boolean
  /** The labels among the `k` nearest items, best first (by score, then count). */
  classes: GalleryClass[]
}

/** Options of `openGallery`. */
export interface OpenGalleryOptions {
  /**
   * A gallery made with another model (another `fingerprint()`) is refused with
   * `ERR_MODEL_MISMATCH`, unless this is true: then every item is embedded again from its stored
   * image, in one transaction, and the gallery takes the model's fingerprint. Default false.
   */
  reembed?: boolean
  /** Create the file when it does not exist. Default true. */
  create?: boolean
}

const FORMAT = 'siamese-torch gallery 1'
const ROWS_A_READ = 8192

/**
 * Opens (or creates) the gallery in the SQLite file `path`, for `model`. Its embeddings are read
 * into memory; a gallery made with another model is refused (`ERR_MODEL_MISMATCH`) or, with
 * `reembed`, embedded again.
 *
 * @example
 * ```ts
 * const gallery = await openGallery('staff.sqlite', model)
 * await gallery.enrol('ada', ['ada-1.png', 'ada-2.png'])
 * const { label, known } = await gallery.classify('door-camera.png')
 * gallery.close()
 * ```
 */
export async function openGallery (path: string, model: SiameseModel, options: OpenGalleryOptions = {}): Promise<Gallery> {
  const file = resolve(nonEmptyString(path, 'path'))
  if (!isPlainObject(options)) throw invalidArg('options', 'an object', options)
  const reembed = options.reembed ?? false
  const create = options.create ?? true
  if (typeof reembed !== 'boolean') throw invalidArg('options.reembed', 'a boolean', reembed)
  if (typeof create !== 'boolean') throw invalidArg('options.create', 'a boolean', create)
  if (!create && !existsSync(file)) throw new SiameseTorchError(`${file}: no such gallery`, 'ERR_NOT_FOUND', { path: file })
  const fingerprint = await model.fingerprint()
  const { width, height, channels, embeddingSize } = model.config
  let db: Database.Database
  try {
    db = new Database(file)
  } catch (err) {
    throw new SiameseTorchError(`${file}: cannot open the gallery (${err instanceof Error ? err.message : String(err)})`, 'ERR_BAD_FILE', { path: file, cause: err })
  }
  try {
    const meta = prepareSchema(db, file, { format: FORMAT, fingerprint, width: String(width), height: String(height), channels: String(channels), dims: String(embeddingSize) })
    const shape = `${meta['width']}x${meta['height']}x${meta['channels']}`
    if (meta['fingerprint'] !== fingerprint) {
      const why = `${file} was made with another model (fingerprint ${meta['fingerprint'] ?? '?'}, this one's is ${fingerprint})`
      if (!reembed) throw new SiameseTorchError(`${why}: open it with that model, or with { reembed: true } to embed its images again`, 'ERR_MODEL_MISMATCH', { path: file })
      if (shape !== `${width}x${height}x${channels}`) {
        throw new SiameseTorchError(`${why}, and its images are ${shape}, not this model's ${width}x${height}x${channels}: it cannot be re-embedded`, 'ERR_MODEL_MISMATCH', { path: file })
      }
      await reembedAll(db, model, fingerprint)
    }
    const { count } = db.prepare('SELECT count(*) AS count FROM items').get() as { count: number }
    const index = new (binding().NativeIndex)(embeddingSize, count + Math.max(1024, count >> 3))
    await loadIndex(db, index, embeddingSize)
    return makeGallery(file, db, model, index, fingerprint)
  } catch (err) {
    db.close()
    throw err
  }
}

/**
 * The fingerprint of the model a gallery file was made with, read without opening it for writing;
 * undefined when the file is not a gallery. For servers that pick, among their models, the one a
 * gallery belongs to.
 *
 * @example
 * ```ts
 * if (galleryFingerprint('staff.sqlite') === await model.fingerprint()) await openGallery('staff.sqlite', model)
 * ```
 */
export function galleryFingerprint (path: string): string | undefined {
  return readGalleryFile(resolve(nonEmptyString(path, 'path')), recordedFingerprint)
}

/**
 * What `GET /galleries` lists of a gallery file without opening it (no embeddings are read): its
 * model's fingerprint and its counts of items and labels; undefined when `path` is not a gallery.
 */
export function gallerySummary (path: string): { fingerprint: string, items: number, labels: number } | undefined {
  return readGalleryFile(path, (db) => {
    const fingerprint = recordedFingerprint(db)
    if (fingerprint === undefined) return undefined
    const counts = db.prepare('SELECT count(*) AS items, count(DISTINCT label) AS labels FROM items').get() as { items: number, labels: number }
    return { fingerprint, ...counts }
  })
}

/** `read` of the gallery file at `path`, opened read-only; undefined when it is no readable gallery. */
function readGalleryFile<T> (path: string, read: (db: Database.Database) => T | undefined): T | undefined {
  let db: Database.Database | undefined
  try {
    db = new Database(path, { readonly: true, fileMustExist: true })
    return read(db)
  } catch {
    return undefined
  } finally {
    db?.close()
  }
}

function recordedFingerprint (db: Database.Database): string | undefined {
  return (db.prepare("SELECT value FROM gallery WHERE key = 'fingerprint'").get() as { value: string } | undefined)?.value
}

/** The tables, made when missing; the gallery's record (made from `fresh` for a new file). */
function prepareSchema (db: Database.Database, file: string, fresh: Record<string, string>): Record<string, string> {
  try {
    // 16 KiB pages hold seven items each (an item is about 2.3 KiB at 512 values); at SQLite's
    // default 4 KiB, one. A no-op on a file that has pages already.
    db.pragma('page_size = 16384')
    db.pragma('journal_mode = WAL')
    // Every enrolment's commit reaches the disk before it is acknowledged: a killed process, or a
    // lost machine, keeps every item it was told about.
    db.pragma('synchronous = FULL')
    db.pragma('busy_timeout = 5000')
    db.exec(`
      CREATE TABLE IF NOT EXISTS gallery (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        label TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        embedding BLOB NOT NULL,
        image BLOB NOT NULL,
        created TEXT NOT NULL,
        UNIQUE (label, sha256)
      );`)
  } catch (err) {
    throw new SiameseTorchError(`${file}: not a gallery (${err instanceof Error ? err.message : String(err)})`, 'ERR_BAD_FILE', { path: file, cause: err })
  }
  const read = (): Record<string, string> => Object.fromEntries((db.prepare('SELECT key, value FROM gallery').all() as Array<{ key: string, value: string }>).map((r) => [r.key, r.value]))
  let meta = read()
  if (meta['format'] === undefined) {
    const insert = db.prepare('INSERT INTO gallery (key, value) VALUES (?, ?)')
    db.transaction(() => { for (const [k, v] of Object.entries({ ...fresh, created: new Date().toISOString() })) insert.run(k, v) })()
    meta = read()
  }
  if (meta['format'] !== FORMAT) throw new SiameseTorchError(`${file}: not a gallery of this version (format ${meta['format'] ?? 'unknown'})`, 'ERR_BAD_FILE', { path: file })
  return meta
}

async function loadIndex (db: Database.Database, index: NativeIndex, dims: number): Promise<void> {
  const page = db.prepare('SELECT id, embedding FROM items WHERE id > ? ORDER BY id LIMIT ?')
  let after = 0
  for (;;) {
    const rows = page.all(after, ROWS_A_READ) as Array<{ id: number, embedding: Buffer }>
    if (rows.length === 0) return
    const ids = new Float64Array(rows.length)
    const values = new Float32Array(rows.length * dims)
    rows.forEach((r, i) => {
      if (r.embedding.byteLength !== dims * 4) throw new SiameseTorchError(`item ${r.id}: an embedding of ${r.embedding.byteLength} bytes, not ${dims * 4}`, 'ERR_BAD_FILE')
      ids[i] = r.id
      values.set(new Float32Array(r.embedding.buffer, r.embedding.byteOffset, dims), i * dims)
    })
    await index.add(ids, values)
    after = rows.at(-1)?.id ?? after
  }
}

/** Every item embedded again from its stored image, in one transaction, under the new fingerprint. */
async function reembedAll (db: Database.Database, model: SiameseModel, fingerprint: string): Promise<void> {
  const rows = db.prepare('SELECT id, image FROM items ORDER BY id').all() as Array<{ id: number, image: Buffer }>
  const updates: Array<[number, Buffer]> = []
  for (let start = 0; start < rows.length; start += 256) {
    const part = rows.slice(start, start + 256)
    // The stored images are at the model's input size already: decoding them is all there is to do.
    const embeddings = await model.embed(part.map((r) => r.image))
    part.forEach((r, i) => { updates.push([r.id, embeddingBlob(embeddings[i])]) })
  }
  const update = db.prepare('UPDATE items SET embedding = ? WHERE id = ?')
  db.transaction(() => {
    for (const [id, blob] of updates) update.run(blob, id)
    db.prepare("UPDATE gallery SET value = ? WHERE key = 'fingerprint'").run(fingerprint)
  })()
}

function embeddingBlob (e: Float32Array): Buffer {
  if (!e.every(Number.isFinite)) throw new SiameseTorchError('the model gave an embedding of NaN or infinity', 'ERR_TORCH')
  return Buffer.from(e.buffer, e.byteOffset, e.byteLength)
}

/** The bytes an image's SHA-256 is taken of: a file's, a buffer's, or raw pixels'. */
async function sourceBytes (input: unknown): Promise<Uint8Array | undefined> {
  if (typeof input === 'string') {
    try {
      return await readFile(input)
    } catch {
      return undefined // the decoder names the missing file
    }
  }
  if (input instanceof Uint8Array) return input
  if (input instanceof Float32Array) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength)
  if (isPlainObject(input) && input['data'] instanceof Uint8Array) return input['data']
  return undefined
}

const asList = <T>(x: T | readonly T[]): T[] => (Array.isArray(x) ? [...(x as readonly T[])] : [x as T])

// openGallery's way to the private constructor (its arguments are not part of the published types).
let makeGallery: (path: string, db: Database.Database, model: SiameseModel, index: NativeIndex, fingerprint: string) => Gallery

/** A gallery open for a model: see `openGallery`. Calls may overlap; close it when done. */
export class Gallery {
  #db: Database.Database | undefined
  readonly #index: NativeIndex
  readonly #statements: {
    insert: Database.Statement
    existing: Database.Statement
    label: Database.Statement
    image: Database.Statement
    list: Database.Statement
    listLabel: Database.Statement
    countLabel: Database.Statement
    labels: Database.Statement
  }

  static {
    makeGallery = (path, db, model, index, fingerprint) => new Gallery(path, db, model, index, fingerprint)
  }

  /** Use `openGallery`. */
  private constructor (readonly path: string, db: Database.Database, readonly model: SiameseModel, index: NativeIndex,
    /** The fingerprint of the model its embeddings come from (`model.fingerprint()`). */
    readonly fingerprint: string) {
    this.#db = db
    this.#index = index
    this.#statements = {
      insert: db.prepare('INSERT INTO items (label, sha256, embedding, image, created) VALUES (?, ?, ?, ?, ?) ON CONFLICT (label, sha256) DO NOTHING RETURNING id'),
      existing: db.prepare('SELECT id, created FROM items WHERE label = ? AND sha256 = ?'),
      label: db.prepare('SELECT label FROM items WHERE id = ?'),
      image: db.prepare('SELECT image FROM items WHERE id = ?'),
      list: db.prepare('SELECT id, label, sha256, created FROM items ORDER BY id LIMIT ? OFFSET ?'),
      listLabel: db.prepare('SELECT id, label, sha256, created FROM items WHERE label = ? ORDER BY id LIMIT ? OFFSET ?'),
      countLabel: db.prepare('SELECT count(*) AS total FROM items WHERE label = ?'),
      labels: db.prepare('SELECT label, count(*) AS count FROM items GROUP BY label ORDER BY label')
    }
  }

  #open (): Database.Database {
    if (!this.#db) throw new SiameseTorchError(`the gallery ${this.path} has been closed`, 'ERR_DISPOSED')
    return this.#db
  }

  /** Items in the gallery. */
  get size (): number {
    this.#open()
    return this.#index.size()
  }

  /**
   * Enrols images under a label, in one transaction: once it resolves, they are on disk. An image
   * already enrolled under that label (the same SHA-256) is not added twice: its item is returned.
   *
   * @example
   * ```ts
   * const items = await gallery.enrol('sandal', ['s1.png', 's2.png'])
   * console.log(items.map((i) => i.id))
   * ```
   */
  async enrol (label: string, images: ImageInput | readonly ImageInput[]): Promise<GalleryItem[]> {
    this.#open()
    const name = nonEmptyString(label, 'label')
    if (name.length > 256) throw invalidArg('label', 'a label of at most 256 characters', name)
    const list = asList(images)
    if (list.length === 0) throw invalidArg('images', 'at least one image', images)
    const { width, height, channels, embeddingSize } = this.model.config
    const pixels = await modelPixels(this.model, list, 'images')
    const size = width * height * channels
    const hashes = await Promise.all(list.map(async (input, i) => {
      const bytes = await sourceBytes(input) ?? pixels.subarray(i * size, (i + 1) * size)
      return createHash('sha256').update(bytes).digest('hex')
    }))
    const stored = await Promise.all(list.map(async (_, i) =>
      sharp(pixels.subarray(i * size, (i + 1) * size), { raw: { width, height, channels } }).png().toBuffer()))
    const embeddings = await this.model.embed(list.map((_, i) => ({ data: pixels.subarray(i * size, (i + 1) * size), width, height, channels })))
    const blobs = embeddings.map(embeddingBlob)
    const db = this.#open()
    const created = new Date().toISOString()
    const fresh: Array<{ id: number, row: number }> = []
    const items = db.transaction(() => list.map((_, i): GalleryItem => {
      const sha256 = hashes[i]
      const row = this.#statements.insert.get(name, sha256, blobs[i], stored[i], created) as { id: number } | undefined
      if (row) {
        fresh.push({ id: row.id, row: i })
        return { id: row.id, label: name, sha256, created }
      }
      const old = this.#statements.existing.get(name, sha256) as { id: number, created: string }
      return { id: old.id, label: name, sha256, created: old.created }
    }))()
    if (fresh.length > 0) {
      const values = new Float32Array(fresh.length * embeddingSize)
      fresh.forEach(({ row }, i) => values.set(embeddings[row], i * embeddingSize))
      await this.#index.add(Float64Array.from(fresh, (f) => f.id), values)
    }
    return items
  }

  /**
   * Removes items by id; returns how many there were.
   *
   * @example
   * ```ts
   * await gallery.remove([12, 13])
   * ```
   */
  async remove (ids: number | readonly number[]): Promise<number> {
    const db = this.#open()
    const list = asList(ids).map((id, i) => integerIn(id, `ids[${i}]`, 1))
    const del = db.prepare('DELETE FROM items WHERE id = ? RETURNING id')
    const gone = db.transaction(() => list.flatMap((id) => (del.get(id) as { id: number } | undefined)?.id ?? []))()
    if (gone.length > 0) await this.#index.remove(Float64Array.from(gone))
    return gone.length
  }

  /**
   * Removes every item of a label; returns how many there were.
   *
   * @example
   * ```ts
   * await gallery.removeLabel('ada')
   * ```
   */
  async removeLabel (label: string): Promise<number> {
    const db = this.#open()
    const name = nonEmptyString(label, 'label')
    const gone = (db.prepare('DELETE FROM items WHERE label = ? RETURNING id').all(name) as Array<{ id: number }>).map((r) => r.id)
    if (gone.length > 0) await this.#index.remove(Float64Array.from(gone))
    return gone.length
  }

  /**
   * Items in id order, a page at a time, optionally of one label.
   *
   * @example
   * ```ts
   * const { items, total } = gallery.list({ label: 'ada', limit: 20 })
   * ```
   */
  list (options: { label?: string, offset?: number, limit?: number } = {}): { items: GalleryItem[], total: number } {
    this.#open()
    if (!isPlainObject(options)) throw invalidArg('options', 'an object', options)
    const offset = options.offset === undefined ? 0 : integerIn(options.offset, 'offset', 0)
    const limit = options.limit === undefined ? 100 : integerIn(options.limit, 'limit', 1, 10_000)
    const label = options.label === undefined ? undefined : nonEmptyString(options.label, 'label')
    if (label === undefined) {
      // Every item is in the index: its size is the count, without a scan of the table.
      return { items: this.#statements.list.all(limit, offset) as GalleryItem[], total: this.#index.size() }
    }
    const items = this.#statements.listLabel.all(label, limit, offset) as GalleryItem[]
    const { total } = this.#statements.countLabel.get(label) as { total: number }
    return { items, total }
  }

  /**
   * The labels and how many items each has, by label.
   *
   * @example
   * ```ts
   * for (const { label, count } of gallery.labels()) console.log(label, count)
   * ```
   */
  labels (): Array<{ label: string, count: number }> {
    this.#open()
    return this.#statements.labels.all() as Array<{ label: string, count: number }>
  }

  /** An item's stored image (PNG, at the model's input size), or undefined for an id not in the gallery. */
  image (id: number): Buffer | undefined {
    this.#open()
    return (this.#statements.image.get(integerIn(id, 'id', 1)) as { image: Buffer } | undefined)?.image
  }

  /**
   * The `k` items nearest each query (default 5), nearest first: exact search over every item.
   * One image gives one list; an array, one list per image.
   *
   * @example
   * ```ts
   * const [best] = await gallery.identify('query.png', { k: 3 })
   * console.log(best?.label, best?.pSame)
   * ```
   */
  async identify (images: ImageInput, options?: { k?: number }): Promise<GalleryMatch[]>
  async identify (images: readonly ImageInput[], options?: { k?: number }): Promise<GalleryMatch[][]>
  async identify (images: ImageInput | readonly ImageInput[], options: { k?: number } = {}): Promise<GalleryMatch[] | GalleryMatch[][]> {
    const k = options.k === undefined ? 5 : integerIn(options.k, 'k', 1, 1000)
    const lists = await this.#nearest(asList(images), k)
    return Array.isArray(images) ? lists : lists[0] ?? []
  }

  /**
   * Classifies each query by its `k` nearest items (default 10): the label of the nearest item,
   * whether the model calls that pair the same (`known`), and the labels among the neighbours,
   * each scored by its best P(same). One image gives one verdict; an array, one per image.
   *
   * @example
   * ```ts
   * const verdict = await gallery.classify('query.png')
   * console.log(verdict.known ? verdict.label : 'a stranger')
   * ```
   */
  async classify (images: ImageInput, options?: { k?: number }): Promise<GalleryClassification>
  async classify (images: readonly ImageInput[], options?: { k?: number }): Promise<GalleryClassification[]>
  async classify (images: ImageInput | readonly ImageInput[], options: { k?: number } = {}): Promise<GalleryClassification | GalleryClassification[]> {
    const k = options.k === undefined ? 10 : integerIn(options.k, 'k', 1, 1000)
    const verdicts = (await this.#nearest(asList(images), k)).map((matches): GalleryClassification => {
      const byLabel = new Map<string, GalleryClass>()
      for (const m of matches) {
        const c = byLabel.get(m.label)
        if (c) {
          c.count++
          c.examples.push(m)
        } else {
          byLabel.set(m.label, { label: m.label, score: m.pSame, count: 1, examples: [m] })
        }
      }
      const classes = [...byLabel.values()].sort((a, b) => b.score - a.score || b.count - a.count)
      return { label: matches[0]?.label, known: matches[0]?.same ?? false, classes }
    })
    return Array.isArray(images) ? verdicts : verdicts[0]
  }

  async #nearest (queries: unknown[], k: number): Promise<GalleryMatch[][]> {
    this.#open()
    if (queries.length === 0) throw invalidArg('images', 'at least one image', queries)
    const embeddings = await this.model.embed(queries as ImageInput[])
    const { embeddingSize, loss, threshold } = this.model.config
    const flat = new Float32Array(queries.length * embeddingSize)
    embeddings.forEach((e, i) => flat.set(e, i * embeddingSize))
    const found = await searchIndex(this.model, this.#index, flat, k)
    this.#open() // closed while searching: the labels are gone
    return queries.map((_, q) => Array.from({ length: found.k }, (_, j): GalleryMatch => {
      const at = q * found.k + j
      const id = found.ids[at]
      const pSame = found.pSame[at]
      const distance = found.distance[at]
      const label = (this.#statements.label.get(id) as { label: string } | undefined)?.label ?? ''
      return { id, label, pSame, distance, same: loss === 'pair-ce' ? pSame >= threshold : distance <= threshold }
    }).filter((m) => m.label !== '')) // removed while the search ran
  }

  /** Closes the database; the gallery's calls then fail with `ERR_DISPOSED`. Safe to call twice. */
  close (): void {
    this.#db?.close()
    this.#db = undefined
  }
}
