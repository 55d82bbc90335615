#!/usr/bin/env node
// The siamese-torch command line: train, eval, compare, classify, embed, info. Arguments are
// parsed with commander, progress drawn with cli-progress. Every flag that stands for a library
// option comes from the contract (lib/contract.ts): its help, its choices, its check and the
// default its help shows. Those flags carry no commander default, so an option reaches the
// library only when the user typed it: a resumed run keeps what its checkpoint recorded.
import { readFile, writeFile } from 'node:fs/promises'
import { basename, dirname, extname, join, resolve } from 'node:path'

import { SingleBar } from 'cli-progress'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'

import { choices, defaults, evaluationSettings, modelSettings, recipeTrainingDefaults, trainingSettings, type Channels, type Fit, type Precision, type Setting } from './contract.js'
import { classFolderSet } from './datasets/image-folder.js'
import type { DataSplit, LabelledImages } from './datasets/types.js'
import { launchedAsRank, resolveDistributed } from './distributed.js'
import { SiameseTorchError } from './errors.js'
import { prepareOutDir, prepareOutFile } from './files.js'
import { launchLocalRanks } from './launch.js'
import { TrainingFeed } from './page.js'
import { serve, type ServeHandle } from './serve.js'
import { loadModel, train, type LoadModelOptions, type Metrics, type SiameseModel, type Verification } from './model.js'
import { nativeAugment, readCheckpoint, resolveData, resolveFit, trainOptionsOf, type TrainOptions } from './options.js'
import { epochMetrics, type EpochMetrics, type ProgressEvent } from './progress.js'
import { augmentSheetSvg, curvesSvg, embeddingMapSvg, pairsSheetSvg, rocSvg, svgToPng, writeSvgAndPng } from './report.js'
import { invalidArg } from './validate.js'
import { packageVersion, version, type VersionInfo } from './version.js'

// Exit codes: 0 done, 1 a runtime failure, 2 a usage error, 130 stopped by Ctrl-C.
const EXIT_FAILURE = 1
const EXIT_USAGE = 2
const EXIT_INTERRUPTED = 130

class UsageError extends Error {}

function out (line: string): void {
  process.stdout.write(`${line}\n`)
}

function percent (x: number): string {
  return `${(100 * x).toFixed(2)}%`
}

/** `batchSize` -> `batch-size`. */
function kebab (key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
}

/**
 * A flag for a contract setting: `--<kebab key> <value>`, checked by the setting itself (the
 * library's own message, naming the flag), with the default in its help but not as a value.
 */
function settingOption (key: string, setting: Setting<unknown>, recipe?: number | string): Option {
  const flag = `--${kebab(key)}`
  const fallback = setting.default
  // A training setting whose recipe value differs: the reference scheme and mining take that one.
  const recipeNote = recipe === undefined ? '' : `; ${String(recipe)} with --pairs reference or --mining`
  const shown = typeof fallback === 'string' || typeof fallback === 'number' ? ` (default: ${fallback}${recipeNote})` : ''
  // A flag whose value may be left out: --freeze-tower (every stage), --augment (the preset).
  const optional = setting.kind === 'stages' || setting.kind === 'augment'
  const placeholder = { choice: 'name', integer: 'n', number: 'x', numbers: 'x|a,b,c', boolean: 'yes|no', device: 'device', stages: 'n', augment: 'json' }[setting.kind]
  const option = new Option(optional ? `${flag} [${placeholder}]` : `${flag} <${placeholder}>`, `${setting.help}${shown}`)
  if (setting.kind === 'choice' && setting.choices) return option.choices(setting.choices.map(String))
  // The text as the value the library's own check takes: a number, numbers, JSON, or the text itself.
  const value = (text: string): unknown => {
    const n = text.trim() === '' ? NaN : Number(text)
    if (!Number.isNaN(n)) return n
    if (setting.kind === 'numbers' && text.includes(',')) return text.split(',').map((part) => part.trim() === '' ? NaN : Number(part))
    if (setting.kind === 'boolean' && /^(yes|true|no|false)$/i.test(text)) return /^(yes|true)$/i.test(text)
    if (setting.kind === 'augment') {
      try {
        return JSON.parse(text) as unknown
      } catch {
        return text
      }
    }
    return text
  }
  if (optional) option.preset(true)
  return option.argParser((text: string | boolean) => {
    try {
      // A bare optional flag: commander hands over the preset, not text.
      return setting.check(typeof text === 'string' ? value(text) : text, flag)
    } catch (err) {
      throw new InvalidArgumentError(err instanceof Error ? err.message : String(err))
    }
  })
}

/** A flag's value as a positive integer (`--nproc`, `--dist-timeout`). */
function positiveInteger (text: string, flag: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new InvalidArgumentError(`${flag}: expected a positive integer; received "${text}"`)
  return Number(text)
}

/** `--size WxH` as { width, height }. */
function parseSize (text: string): { width: number, height: number } {
  const match = /^(\d+)x(\d+)$/i.exec(text.trim())
  if (match === null) throw new InvalidArgumentError(`--size: expected WIDTHxHEIGHT, e.g. 64x64; received "${text}"`)
  const size = { width: Number(match[1]), height: Number(match[2]) }
  try {
    modelSettings.width.check(size.width, '--size width')
    modelSettings.height.check(size.height, '--size height')
  } catch (err) {
    throw new InvalidArgumentError(err instanceof Error ? err.message : String(err))
  }
  return size
}

function formatInfo (v: VersionInfo): string {
  const gpus = v.gpus.length === 0
    ? 'none'
    : v.gpus.map((g) => `cuda:${g.index}${g.name ? ` ${g.name}` : ''}`).join(', ')
  return [
    `siamese-torch  ${v.siameseTorch}`,
    `LibTorch       ${v.libtorch} (${v.cudaBuild ? 'CUDA' : 'CPU'} build, found via ${v.libtorchSource})`,
    `library        ${v.libtorchLibrary}`,
    `CUDA           ${v.cuda ? `yes, ${v.cudaDevices} device(s): ${gpus}` : 'no'}`,
    `threads        ${v.threads} by default (${v.cpus} CPU${v.cpus === 1 ? '' : 's'} this process may use; from ${v.threadsBasis})`,
    `bfloat16       ${v.bf16 ? 'yes, this CPU computes it natively' : 'no native support on this CPU'}`,
    `Node.js        ${process.version}`
  ].join('\n')
}

/** How many threads a run uses, and why: "2 threads (2 CPUs, affinity)" or "1 thread (--threads)". */
function threadsLine (threads: number | undefined): string {
  const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`
  if (threads !== undefined) return `${plural(threads, 'thread')} (--threads)`
  const v = version()
  return `${plural(v.threads, 'thread')} (${plural(v.cpus, 'CPU')}, ${v.threadsBasis})`
}

// The training settings that are flags of `train`, and the model settings a new run builds with.
const TRAIN_FLAGS = Object.keys(trainingSettings)
const MODEL_FLAGS = ['tower', 'channels', 'mean', 'std', 'loss', 'margin', 'embeddingSize', 'device', 'weightInit'] as const

interface TrainFlags extends Record<string, unknown> {
  data?: string
  download?: boolean
  out: string
  resume?: string
  json?: boolean
  size?: { width: number, height: number }
  init?: string
  initPrefix?: string
  fit?: Fit
  nproc?: number
  distTimeout?: number
  serve?: number
  host?: string
  tokenFile?: string
}

/** The library's options from the flags the user typed, and only those. */
function trainOptionsFrom (flags: TrainFlags, outDir: string): TrainOptions {
  const options: Record<string, unknown> = { outDir }
  for (const key of [...TRAIN_FLAGS, ...MODEL_FLAGS]) if (flags[key] !== undefined) options[key] = flags[key]
  if (flags.download === true) options['download'] = true
  if (flags.resume !== undefined) options['resume'] = flags.resume
  if (flags.size !== undefined) Object.assign(options, flags.size)
  if (flags.init !== undefined) options['init'] = { path: flags.init, prefix: flags.initPrefix ?? '' }
  if (flags.init === undefined && flags.initPrefix !== undefined) throw invalidArg('--init-prefix', 'a prefix given with --init <weights>', flags.initPrefix)
  if (flags.fit !== undefined) options['fit'] = flags.fit
  return options
}

function epochLine (m: EpochMetrics, epochs: number | undefined): string {
  // Said when the test figures are on classes never trained (all of them, or some).
  const unseen = m.unseenClasses === 0 ? '' : m.unseenClasses === m.testClasses ? ' (unseen classes)' : ` (${m.unseenClasses} of ${m.testClasses} classes unseen)`
  return `epoch ${m.epoch}/${epochs ?? '?'}  train loss ${m.trainLoss.toFixed(4)}  test loss ${m.testLoss.toFixed(4)}  ` +
    `accuracy${unseen} ${percent(m.testAccuracy)}  AUC ${m.auc.toFixed(4)}  ${m.pairsPerSecond.toFixed(0)} pairs/s  ${m.seconds.toFixed(1)} s`
}

async function writeMetrics (dir: string, history: readonly EpochMetrics[]): Promise<string[]> {
  const json = join(dir, 'metrics.json')
  const csv = join(dir, 'metrics.csv')
  await writeFile(json, `${JSON.stringify(history, null, 2)}\n`)
  const columns = ['epoch', 'trainLoss', 'trainAccuracy', 'testLoss', 'testAccuracy', 'auc', 'threshold', 'seconds', 'pairsPerSecond', 'testClasses', 'unseenClasses'] as const
  await writeFile(csv, [columns.join(','), ...history.map((h) => columns.map((c) => h[c]).join(','))].join('\n') + '\n')
  return [json, csv]
}

/**
 * What a training run shows and writes as it goes: one JSON line per event (--json), a progress
 * bar on a terminal, a line per epoch otherwise; after each epoch, the metrics files and the curves.
 */
class TrainingReport {
  readonly history: EpochMetrics[] = []
  readonly written = new Set<string>()
  #epochs: number | undefined
  #bar: SingleBar | undefined
  // Files are rewritten after every epoch, in order, so that a stopped run still has them.
  #files: Promise<void> = Promise.resolve()

  constructor (private readonly json: boolean, private readonly tty: boolean, private readonly outDir: string,
    private readonly title: string) {}

  readonly onProgress = (e: ProgressEvent): void => {
    if (this.json) out(JSON.stringify(e.type === 'epoch' ? { type: 'epoch', ...epochMetrics(e) } : e))
    if (e.type === 'batch') {
      this.#epochs = e.epochs
      if (this.tty) this.#showBatch(e)
    } else if (e.type === 'epoch') {
      this.stopBar()
      const metrics = epochMetrics(e)
      if (!this.json) out(epochLine(metrics, this.#epochs))
      this.history.push(metrics)
      this.#writeAfterEpoch([...this.history])
    } else {
      this.written.add(e.path)
    }
  }

  #showBatch (e: Extract<ProgressEvent, { type: 'batch' }>): void {
    if (!this.#bar) {
      this.#bar = new SingleBar({
        format: 'epoch {epoch}/{epochs} [{bar}] {value}/{total} batches | loss {loss} | {pps} pairs/s | ETA {eta_formatted}',
        hideCursor: true,
        clearOnComplete: true
      })
      this.#bar.start(e.batches, 0, { epoch: e.epoch, epochs: e.epochs, loss: '-', pps: '-' })
    }
    this.#bar.update(e.batch, { epoch: e.epoch, epochs: e.epochs, loss: e.loss.toFixed(4), pps: e.pairsPerSecond.toFixed(0) })
  }

  #writeAfterEpoch (snapshot: EpochMetrics[]): void {
    this.#files = this.#files.then(async () => {
      for (const f of await writeMetrics(this.outDir, snapshot)) this.written.add(f)
      for (const f of await writeSvgAndPng(await curvesSvg(snapshot, this.title), join(this.outDir, 'curves'))) this.written.add(f)
    })
  }

  stopBar (): void {
    this.#bar?.stop()
    this.#bar = undefined
  }

  /** Waits for the files of the last epoch; their failure is the run's. */
  async flush (): Promise<void> {
    await this.#files
  }

  /** The pairs sheet and the embedding map of a trained model, on the test split of its data. */
  async drawModel (model: SiameseModel, data: DataSplit): Promise<void> {
    const after = `after ${this.history.at(-1)?.epoch ?? 0} epochs`
    const sheet = await pairsSheetSvg(model, data.test, `Fixed test pairs ${after}: P(same), green right, red wrong`)
    for (const f of await writeSvgAndPng(sheet, join(this.outDir, 'pairs'))) this.written.add(f)
    const map = await embeddingMapSvg(model, data.test, `Test embeddings ${after}, PCA to 2-D`)
    for (const f of await writeSvgAndPng(map, join(this.outDir, 'embeddings'))) this.written.add(f)
  }

  lastCheckpoint (): string | undefined {
    return [...this.written].filter((f) => f.includes('checkpoint-epoch-')).at(-1)
  }

  printSummary (): void {
    const files = [...this.written].sort()
    if (this.json) {
      out(JSON.stringify({ type: 'done', history: this.history, files }))
      return
    }
    out('')
    out('epoch  train loss  test loss  accuracy  AUC     seconds')
    for (const h of this.history) {
      out(`${String(h.epoch).padStart(5)}  ${h.trainLoss.toFixed(4).padStart(10)}  ${h.testLoss.toFixed(4).padStart(9)}  ` +
        `${percent(h.testAccuracy).padStart(8)}  ${h.auc.toFixed(4)}  ${h.seconds.toFixed(1).padStart(7)}`)
    }
    out('')
    out('written:')
    for (const f of files) out(`  ${f}`)
  }
}

/** The name `train --serve` serves the trained model under (its file's name, model.safetensors, less the extension). */
const TRAINED_MODEL_NAME = 'model'

/**
 * `train --serve`: the server whose page watches the run (rank 0's alone), the feed it streams,
 * and the sheet of test pairs drawn from each checkpoint. Sheets are drawn one at a time, on one
 * thread, from the newest checkpoint waiting (those overtaken are skipped), so that they never
 * pile up; a sheet that fails is reported on stderr and training goes on.
 */
class LiveTraining {
  #test: LabelledImages | undefined
  #recordedTest: Promise<LabelledImages | undefined> | undefined
  #pending: string | undefined
  #drawing: Promise<void> = Promise.resolve()
  #busy = false

  private constructor (readonly server: ServeHandle, readonly feed: TrainingFeed, private readonly json: boolean) {}

  /** Starts the server (with no model until training ends) and says where. */
  static async start (flags: TrainFlags, json: boolean): Promise<LiveTraining> {
    const feed = new TrainingFeed()
    const token = flags.tokenFile === undefined ? undefined : await readTokenFile(flags.tokenFile)
    const server = await serve({ models: [], training: feed, port: flags.serve ?? 8080, host: flags.host ?? '127.0.0.1', ...(token !== undefined ? { token } : {}) })
    out(json ? JSON.stringify({ type: 'serve', url: server.url, models: [] }) : `watching at ${server.url}`)
    return new LiveTraining(server, feed, json)
  }

  /** The test split the sheets show (a new run's data; a resumed run's is read from its checkpoint). */
  useTestSet (test: LabelledImages | undefined): void {
    this.#test = test
  }

  /** Training's events: to the feed, and each checkpoint to a sheet. */
  onProgress (report: (e: ProgressEvent) => void): (e: ProgressEvent) => void {
    return (e) => {
      report(e)
      this.feed.push(e)
      if (e.type === 'file' && e.kind === 'checkpoint') {
        this.#pending = e.path
        if (!this.#busy) this.#drawing = this.#drain()
      }
    }
  }

  async #drain (): Promise<void> {
    this.#busy = true
    try {
      for (let path = this.#pending; path !== undefined; path = this.#pending) {
        this.#pending = undefined
        try {
          const model = await loadModel(path, { threads: 1 })
          try {
            await this.#publish(model, Number(model.metadata['epoch'] ?? /checkpoint-epoch-(\d+)/.exec(path)?.[1] ?? 0))
          } finally {
            model.dispose()
          }
        } catch (err) {
          this.#warn(`the sheet of test pairs of ${path} was not drawn (${err instanceof Error ? err.message : String(err)}); training goes on`)
        }
      }
    } finally {
      this.#busy = false
    }
  }

  async #publish (model: SiameseModel, epoch: number): Promise<void> {
    if (this.#test === undefined) {
      // A resumed run: the data its checkpoint recorded, read once at the model's size.
      this.#recordedTest ??= (async () => {
        const source = recordedSource(model)
        return source === undefined ? undefined : (await resolveData(source, false, { ...model.config, fit: resolveFit({}, trainOptionsOf(model.metadata)) })).test
      })()
    }
    const test = this.#test ?? await this.#recordedTest
    if (test === undefined) return
    const svg = await pairsSheetSvg(model, test, `Fixed test pairs after epoch ${epoch}: P(same), green right, red wrong`)
    this.feed.publishSheet(await svgToPng(svg), epoch)
  }

  #warn (line: string): void {
    process.stderr.write(`siamese-torch: ${line}\n`)
  }

  /**
   * Training has ended: the last sheet (when no checkpoint drew it), the model served, the end
   * told; then serves until SIGINT or SIGTERM, and closes gracefully.
   */
  async serveTrained (model: SiameseModel, lastEpoch: number): Promise<void> {
    await this.#drawing
    if (lastEpoch > 0 && this.feed.state.sheetEpoch !== lastEpoch) {
      await this.#publish(model, lastEpoch).catch((err: unknown) => this.#warn(`the last sheet of test pairs was not drawn (${err instanceof Error ? err.message : String(err)})`))
    }
    await this.server.addModel(TRAINED_MODEL_NAME, model)
    this.feed.finish()
    out(this.json
      ? JSON.stringify({ type: 'serve', url: this.server.url, models: [TRAINED_MODEL_NAME] })
      : `serving the trained model as "${TRAINED_MODEL_NAME}" at ${this.server.url} until Ctrl-C or SIGTERM`)
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off('SIGTERM', stop)
        process.off('SIGINT', stop)
        if (!this.json) out('stopping: finishing the requests in flight')
        resolve()
      }
      process.on('SIGTERM', stop)
      process.on('SIGINT', stop)
    })
    await this.server.close()
  }

  /** Ends the page's watch: the run failed or stopped (the reason told), then the server closes. */
  async close (error?: string): Promise<void> {
    if (!this.feed.state.done) this.feed.finish(error)
    await this.#drawing
    await this.server.close()
  }
}

/** The command that continues a stopped run: its last checkpoint, its data and its folder. */
function resumeCommand (checkpoint: string, data: string | undefined, outDir: string): string {
  const quote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`)
  return ['siamese-torch train --resume', quote(checkpoint), ...(data === undefined ? [] : ['--data', quote(data)]), '--out', quote(outDir)].join(' ')
}

/** The data source a trained model recorded (the source of a resumed run's data). */
function recordedSource (model: SiameseModel): string | undefined {
  try {
    return readCheckpoint('the model', model.metadata).dataSource
  } catch {
    return undefined
  }
}

/** This process's rank when it was started as one (torchrun, PyTorchJob, --nproc), for its messages. */
function rankPrefix (): string {
  return launchedAsRank() ? ` [rank ${process.env['RANK'] ?? '?'}]` : ''
}

async function trainCommand (flags: TrainFlags): Promise<number> {
  const timeoutMs = flags.distTimeout === undefined ? undefined : flags.distTimeout * 1000
  if (flags.nproc !== undefined && flags.nproc > 1 && !launchedAsRank()) {
    return launchLocalRanks(flags.nproc, process.argv.slice(1), {
      graceMs: (timeoutMs ?? 300_000) + 15_000,
      log: (line) => process.stderr.write(`siamese-torch: ${line}\n`)
    })
  }
  // Started as a rank: the run is distributed, and only rank 0 speaks and writes.
  const distributed = launchedAsRank() ? resolveDistributed(timeoutMs === undefined ? true : { timeoutMs }) : undefined
  if (distributed !== undefined && flags.nproc !== undefined && flags.nproc !== distributed.worldSize) {
    throw invalidArg('--nproc', `the world size this rank was started in (WORLD_SIZE=${distributed.worldSize})`, flags.nproc)
  }
  const speaks = distributed === undefined || distributed.rank === 0
  const json = flags.json === true
  const tty = process.stdout.isTTY === true && !json
  const outDir = resolve(flags.out)
  if (flags.serve === undefined && (flags.host !== undefined || flags.tokenFile !== undefined)) {
    throw new UsageError(`${flags.host !== undefined ? '--host' : '--token-file'} goes with --serve`)
  }
  // A new run trains on --data or the default; a resumed one on its checkpoint's data unless --data says otherwise.
  const source = flags.data ?? (flags.resume === undefined ? defaults.data : undefined)
  const report = new TrainingReport(json, tty, outDir, `Training on ${source ?? 'the checkpoint\'s data'}`)
  const say = (line: string): void => { if (speaks) out(line) }
  const controller = new AbortController()
  let interrupted = false
  const onSigint = (): void => {
    if (interrupted) process.exit(EXIT_INTERRUPTED) // a second Ctrl-C: leave at once
    interrupted = true
    controller.abort(new Error('stopped by Ctrl-C'))
  }
  // --serve: rank 0 serves the page that watches the run, from before the data is read.
  const live = flags.serve !== undefined && speaks ? await LiveTraining.start(flags, json) : undefined
  process.on('SIGINT', onSigint)
  let failure: string | undefined
  try {
    const options = {
      ...trainOptionsFrom(flags, outDir),
      // Watched, a run checkpoints every epoch unless told otherwise: each checkpoint draws the page's
      // sheet. Every rank of a distributed run takes it, as all must run the same settings.
      ...(flags.serve !== undefined && flags['saveEvery'] === undefined ? { saveEvery: 1 } : {}),
      onProgress: live === undefined ? report.onProgress : live.onProgress(report.onProgress),
      signal: controller.signal,
      ...(distributed !== undefined ? { distributed: timeoutMs === undefined ? true : { timeoutMs } } : {})
    }
    if (!json) say(`training on ${source ?? 'the checkpoint\'s data'} with ${threadsLine(options.threads)}${options.precision === 'bf16' ? ', in bf16' : ''}; writing to ${outDir}`)
    // A new run's data is read here once, for training and for the pictures; a resumed run's by
    // the library, at its checkpoint's input size.
    const folderTarget = {
      width: flags.size?.width ?? modelSettings.width.default,
      height: flags.size?.height ?? modelSettings.height.default,
      channels: flags['channels'] as Channels | undefined,
      fit: flags.fit
    }
    const data = flags.resume === undefined && source !== undefined ? await resolveData(source, flags.download === true, folderTarget) : undefined
    live?.useTestSet(data?.test)
    if (speaks && data !== undefined && options.augment !== undefined && options.augment !== false) {
      await prepareOutDir(outDir, '--out')
      const sheet = await augmentSheetSvg(data.train, nativeAugment(options.augment), options.seed ?? 0,
        'Augmented training examples: each image as it is, then as training batches may draw it')
      for (const f of await writeSvgAndPng(sheet, join(outDir, 'augmented'))) report.written.add(f)
    }
    const { model } = await train({ ...options, ...(data !== undefined ? { data } : source !== undefined ? { data: source } : {}) })
    try {
      await report.flush()
      const trainedOn = recordedSource(model)
      const pictured = data ?? (trainedOn === undefined ? undefined : await resolveData(trainedOn, false, { ...model.config, fit: resolveFit({}, trainOptionsOf(model.metadata)) }))
      if (speaks && pictured !== undefined) await report.drawModel(model, pictured)
      if (live !== undefined && !interrupted) {
        // Served until SIGINT or SIGTERM: Ctrl-C no longer stops training, it stops the server.
        process.off('SIGINT', onSigint)
        report.printSummary()
        await live.serveTrained(model, report.history.at(-1)?.epoch ?? 0)
        return 0
      }
    } finally {
      model.dispose()
    }
  } catch (err) {
    report.stopBar()
    await report.flush().catch(() => {})
    failure = interrupted ? 'stopped by Ctrl-C' : err instanceof Error ? err.message : String(err)
    // A distributed run stops on every rank when one is interrupted.
    if (err instanceof SiameseTorchError && err.code === 'ABORT_ERR' && (interrupted || distributed !== undefined)) {
      const last = report.lastCheckpoint()
      const command = last === undefined ? undefined : resumeCommand(last, source, outDir)
      if (json) say(JSON.stringify({ type: 'stopped', lastCheckpoint: last ?? null, resume: command ?? null }))
      else say(`stopped by Ctrl-C; ${command ? `the last checkpoint is ${last}; continue with:\n  ${command}` : 'no checkpoint was written yet'}`)
      return EXIT_INTERRUPTED
    }
    throw err
  } finally {
    process.off('SIGINT', onSigint)
    await live?.close(failure)
  }
  if (speaks) report.printSummary()
  return 0
}

async function withModel<T> (path: string, work: (model: SiameseModel) => Promise<T>, options: LoadModelOptions = {}): Promise<T> {
  const model = await loadModel(path, options)
  try {
    return await work(model)
  } finally {
    model.dispose()
  }
}

function npy (rows: Float32Array[]): Buffer {
  // NumPy's .npy v1.0: magic, header length, a Python dict literal padded to 64 bytes, data.
  const columns = rows[0]?.length ?? 0
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows.length}, ${columns}), }`
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n'
  const prefix = Buffer.alloc(10)
  prefix.write('\x93NUMPY', 0, 'latin1')
  prefix[6] = 1
  prefix[7] = 0
  prefix.writeUInt16LE(header.length, 8)
  const data = Buffer.alloc(rows.length * columns * 4)
  rows.forEach((r, i) => Buffer.from(r.buffer, r.byteOffset, r.byteLength).copy(data, i * columns * 4))
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), data])
}

async function writeOut (file: string, contents: string | Buffer): Promise<void> {
  try {
    await writeFile(file, contents)
  } catch (err) {
    throw new SiameseTorchError(`--out: ${file} cannot be written (${err instanceof Error ? err.message : String(err)})`, 'ERR_BAD_FILE',
      { path: file, cause: err })
  }
}

/** The `train` command: a flag for every training and model setting of the contract. */
function defineTrainCommand (program: Command): void {
  const command = program.command('train')
    .description('train a Siamese network (defaults: the reference recipe on the embedded digits)')
    .option('--data <source>', `embedded, mnist, fashion-mnist, omniglot, a folder of IDX files, or a folder of class folders (default: ${defaults.data}; with --resume: the checkpoint's)`)
    .option('--download', 'download mnist, fashion-mnist or omniglot if missing (verified)')
  for (const [key, setting] of Object.entries(trainingSettings)) {
    command.addOption(settingOption(key, setting, (recipeTrainingDefaults as Record<string, number | string | undefined>)[key]))
  }
  for (const key of MODEL_FLAGS) command.addOption(settingOption(key, modelSettings[key]))
  command
    .option('--size <WxH>', `input size: a folder of images is resized to it (default: ${modelSettings.width.default}x${modelSettings.height.default}; other data has its own)`, parseSize)
    .addOption(new Option('--fit <fit>', 'how a folder\'s images of another shape are resized: cover (crop), contain (letterbox) or fill (stretch) (default: fill)').choices([...choices.fit]))
    .option('--init <weights>', 'start the tower from PyTorch weights (.safetensors, e.g. a torchvision ResNet-18 state dict)')
    .option('--init-prefix <prefix>', 'put before our tensor names when matching --init\'s (e.g. backbone.)')
    .option('--out <dir>', 'where the model, checkpoints, metrics and pictures go', 'siamese-out')
    .option('--resume <checkpoint>', 'continue from a checkpoint, with its options and data (flags typed here win; the data must be the same)')
    .option('--json', 'print one JSON object per event (NDJSON) and nothing else on stdout')
    .option('--nproc <n>', 'train as n ranks on this machine (data-parallel, c10d Gloo); under torchrun or a PyTorchJob, the ranks come from RANK and WORLD_SIZE instead',
      (text: string) => positiveInteger(text, '--nproc'))
    .option('--dist-timeout <seconds>', 'distributed runs: how long to wait for the other ranks before failing with ERR_DISTRIBUTED (default 300)',
      (text: string) => positiveInteger(text, '--dist-timeout'))
    .addOption(new Option('--serve [port]', 'watch the run on a web page served at this port (default 8080; 0: any free one): live curves, progress and test pairs; ' +
      'then serve the trained model until Ctrl-C or SIGTERM. Checkpoints every epoch unless --save-every says otherwise')
      .preset('8080').argParser((text: string) => portNumber(text, '--serve')))
    .option('--host <address>', 'with --serve: the address to listen on (default 127.0.0.1); other than loopback, others can reach it')
    .option('--token-file <file>', 'with --serve: require Authorization: Bearer <the file\'s first line> (the page has a field for it)')
    .addHelpText('after', '\nExample:\n  siamese-torch train --epochs 2 --out out\n  siamese-torch train --data fashion-mnist --download --loss triplet --mining semi-hard\n' +
      '  siamese-torch train --data ./photos --tower resnet18 --size 64x64 --init resnet18.safetensors --freeze-tower 3 --augment\n' +
      '  siamese-torch train --resume out/checkpoint-epoch-2.safetensors --out out\n' +
      '  siamese-torch train --nproc 2 --epochs 2 --out out        (two ranks on this machine)\n' +
      '  siamese-torch train --epochs 5 --serve                    (watch it at http://127.0.0.1:8080)\n' +
      '  torchrun --nproc_per_node 2 --no_python siamese-torch train --epochs 2 --out out')
    .action(async (flags: TrainFlags) => { process.exitCode = await trainCommand(flags) })
}

/** The `info` command: versions and capabilities. */
function defineInfoCommand (program: Command): void {
  program.command('info')
    .description('versions, where LibTorch was found, CUDA devices, threads')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  siamese-torch info --json')
    .action((flags: { json?: boolean }) => {
      const info = version()
      out(flags.json ? JSON.stringify(info) : formatInfo(info))
    })
}

/** The `eval` command: a model's metrics on a data set, and its ROC curve. */
function defineEvalCommand (program: Command): void {
  const keys = ['ways', 'shots', 'queries', 'episodes', 'seed', 'within', 'testSeed', 'allPairs', 'retrieval'] as const
  const command = program.command('eval')
    .description('pair, verification and retrieval metrics and N-way K-shot accuracy of a model, and its ROC curve')
    .argument('<model>', 'a .safetensors model')
    .option('--data <source>', "embedded, mnist, fashion-mnist, omniglot or a folder, whose test split is used (default: the model's own data)")
  for (const key of keys) command.addOption(settingOption(key, evaluationSettings[key]))
  command.addOption(settingOption('precision', modelSettings.precision))
  command
    .option('--out-dir <dir>', "where roc.svg and roc.png are drawn (default: the model's folder)")
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  siamese-torch eval siamese-out/model.safetensors --ways 5 --shots 1\n' +
      '  siamese-torch eval omniglot.safetensors --data omniglot --ways 20 --within alphabet')
    .action(async (path: string, flags: Record<string, unknown> & { data?: string, outDir?: string, json?: boolean }) => {
      const options = Object.fromEntries(keys.filter((k) => flags[k] !== undefined).map((k) => [k, flags[k]]))
      const precision = flags['precision'] as Precision | undefined
      const m = await withModel(path, async (model) => {
        // A name or folder: evaluate() reads it at the model's size and channels, with its fit.
        return model.evaluate(flags.data, options)
      }, precision === undefined ? {} : { precision })
      const pictures = await drawRoc(m, path, flags.outDir)
      if (flags.json) {
        out(JSON.stringify({ ...m, pictures }))
        return
      }
      for (const line of formatMetrics(m)) out(line)
      if (pictures.length > 0) out(`ROC curve  ${pictures.join(', ')}`)
    })
}

/**
 * Draws roc.svg and roc.png in `outDir`, or beside the model. A folder given is a promise kept (its
 * errors are the command's); the model's own folder may be read-only, so there a failure only
 * warns, and the metrics are printed all the same.
 */
async function drawRoc (m: Metrics, modelPath: string, outDir: string | undefined): Promise<string[]> {
  const draw = async (dir: string): Promise<string[]> => writeSvgAndPng(await rocSvg(m, `ROC: ${basename(modelPath)}`), join(dir, 'roc'))
  if (outDir !== undefined) return draw(await prepareOutDir(outDir, '--out-dir'))
  const dir = dirname(resolve(modelPath))
  try {
    return await draw(dir)
  } catch (err) {
    process.stderr.write(`siamese-torch: the ROC curve was not drawn in ${dir} (${err instanceof Error ? err.message : String(err)}); choose a folder with --out-dir\n`)
    return []
  }
}

/** A Metrics as aligned lines of text. */
function formatMetrics (m: Metrics): string[] {
  const fixed = (x: number): string => x.toFixed(4)
  const rate = (x: number | null): string => x === null ? 'n/a (too few different pairs)' : percent(x)
  const lines = [
    `classes    ${m.classes}${m.unseenClasses === null ? '' : m.unseenClasses === m.classes ? ' (all unseen in training)' : ` (${m.unseenClasses} unseen in training)`}`,
    `pairs      ${m.pairs}`,
    `accuracy   ${percent(m.accuracy)} (best ${percent(m.bestAccuracy)} at threshold ${fixed(m.threshold)})`,
    `loss       ${fixed(m.loss)}`
  ]
  const verification = (name: string, v: Verification): void => {
    lines.push(`${name}: ${v.positives} same, ${v.negatives} different`)
    lines.push(`  AUC      ${fixed(v.auc)}`)
    lines.push(`  EER      ${percent(v.eer)} at threshold ${fixed(v.eerThreshold)}`)
    for (const { far, tar } of v.tarAtFar) lines.push(`  TAR@FAR=${String(far).padEnd(6)} ${rate(tar)}`)
  }
  verification('fixed test pairs', m.verification.pairs)
  if (m.verification.allPairs !== null) verification('all pairs', m.verification.allPairs)
  if (m.retrieval !== null) {
    const r = m.retrieval
    lines.push(`retrieval: ${r.queries} queries, P@1 ${percent(r.precisionAt1)}, R-precision ${percent(r.rPrecision)}, MAP@R ${percent(r.mapAtR)}`)
  }
  if (m.episodes !== null) {
    const e = m.episodes
    lines.push(`${e.ways}-way ${e.shots}-shot accuracy  ${percent(e.accuracy)} +- ${percent(e.ci95)} ` +
      `(${e.episodes} episodes, ${e.queries} quer${e.queries === 1 ? 'y' : 'ies'} a class${e.within === 'alphabet' ? ', within an alphabet' : ''})`)
  }
  return lines
}

/** The `compare` command: P(same) of two images. */
function defineCompareCommand (program: Command): void {
  program.command('compare')
    .description('the probability that two images show the same class')
    .argument('<model>', 'a .safetensors model')
    .argument('<a>', 'an image (PNG, JPEG, WebP, GIF, TIFF or AVIF)')
    .argument('<b>', 'another image')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  siamese-torch compare siamese-out/model.safetensors a.png b.png')
    .action(async (path: string, a: string, b: string, flags: { json?: boolean }) => {
      const p = await withModel(path, (model) => model.predict(a, b))
      out(flags.json ? JSON.stringify({ a, b, pSame: p }) : `P(same) = ${p.toFixed(4)}`)
    })
}

/** `--token-file`: the token is the file's first line. */
async function readTokenFile (file: string): Promise<string> {
  let token: string | undefined
  try {
    token = (await readFile(file, 'utf8')).split('\n')[0]?.trim()
  } catch (err) {
    throw new SiameseTorchError(`--token-file: ${file} cannot be read (${err instanceof Error ? err.message : String(err)})`, 'ERR_BAD_FILE', { path: file })
  }
  if (!token) throw invalidArg('--token-file', 'a file whose first line is the token', file)
  return token
}

/** `--serve`'s port: 0 (any free one) to 65535. */
function portNumber (text: string, flag: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 65535) throw new InvalidArgumentError(`${flag}: expected a port from 0 to 65535; received "${text}"`)
  return Number(text)
}

/** The `serve` command: models behind HTTP until SIGTERM or Ctrl-C, which finish the requests in flight. */
function defineServeCommand (program: Command): void {
  program.command('serve')
    .description('serve models over HTTP: KServe v2 (health, metadata, infer), /compare, /embed, /metrics')
    .argument('<models...>', '.safetensors models, each served under its file name less the extension')
    .option('--port <n>', 'the port (0: any free one)', (text: string) => (text === '0' ? 0 : positiveInteger(text, '--port')), 8080)
    .option('--host <address>', 'the address to listen on; other than loopback, others can reach it', '127.0.0.1')
    .option('--token-file <file>', 'require Authorization: Bearer <the file\'s first line> on every request but the health checks')
    .option('--galleries <dir>', 'a folder of galleries (<name>.sqlite, made when missing): /galleries/<name>/items, /classify, /identify')
    .option('--threads <n>', 'LibTorch threads of each model (default: the machine\'s default, as `info` says)', (text: string) => positiveInteger(text, '--threads'))
    .addHelpText('after', '\nExample:\n  siamese-torch serve siamese-out/model.safetensors --port 8080\n' +
      '  curl -s localhost:8080/v2/models/model')
    .action(async (paths: string[], flags: { port: number, host: string, tokenFile?: string, galleries?: string, threads?: number }) => {
      const token = flags.tokenFile === undefined ? undefined : await readTokenFile(flags.tokenFile)
      const server = await serve({
        models: paths,
        port: flags.port,
        host: flags.host,
        ...(token !== undefined ? { token } : {}),
        ...(flags.galleries !== undefined ? { galleries: flags.galleries } : {}),
        ...(flags.threads !== undefined ? { threads: flags.threads } : {})
      })
      const threads = [...new Set([...server.models.values()].map((m) => m.threads))]
      out(`serving ${[...server.models.keys()].join(', ')} at ${server.url} (${threads.join(' or ')} LibTorch thread${threads.length === 1 && threads[0] === 1 ? '' : 's'} a model)`)
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGTERM', stop)
          process.off('SIGINT', stop)
          out('stopping: finishing the requests in flight')
          server.close().then(resolve, resolve)
        }
        process.on('SIGTERM', stop)
        process.on('SIGINT', stop)
      })
    })
}

/** The `classify` command: one-shot classification against a folder of examples. */
function defineClassifyCommand (program: Command): void {
  program.command('classify')
    .description('one-shot classification against a folder of labelled examples')
    .argument('<model>', 'a .safetensors model')
    .argument('<queries...>', 'images to classify')
    .requiredOption('--support <dir>', 'examples, one sub-folder a class: DIR/<class>/*.png')
    .option('--json', 'print JSON (one object per query)')
    .addHelpText('after', '\nExample:\n  siamese-torch classify model.safetensors q1.png q2.png --support examples/')
    .action(async (path: string, queries: string[], flags: { support: string, json?: boolean }) => {
      const results = await withModel(path, async (model) => {
        // The support images read as the model's own training images were (its fit).
        const fit = resolveFit({}, trainOptionsOf(model.metadata))
        const support = await classFolderSet(flags.support, { width: model.config.width, height: model.config.height, channels: model.config.channels, fit })
        return model.classify(queries, support)
      })
      results.forEach((r, i) => {
        out(flags.json
          ? JSON.stringify({ query: queries[i], className: r.className, probability: r.probability, scores: Object.fromEntries(r.classes.map((c, k) => [c, r.scores[k]])) })
          : `${queries[i]}: ${r.className} (${r.probability.toFixed(4)})`)
      })
    })
}

/** The `embed` command: embeddings as JSON or .npy. */
function defineEmbedCommand (program: Command): void {
  program.command('embed')
    .description('embeddings of images, as JSON or .npy')
    .argument('<model>', 'a .safetensors model')
    .argument('<images...>', 'images')
    .requiredOption('--out <file>', 'FILE.json or FILE.npy')
    .addHelpText('after', '\nExample:\n  siamese-torch embed model.safetensors *.png --out embeddings.npy')
    .action(async (path: string, images: string[], flags: { out: string }) => {
      const ext = extname(flags.out).toLowerCase()
      if (ext !== '.json' && ext !== '.npy') throw new UsageError(`--out: '${flags.out}' must end in .json or .npy`)
      const file = await prepareOutFile(flags.out, '--out')
      const rows = await withModel(path, (model) => model.embed(images))
      await writeOut(file, ext === '.npy' ? npy(rows) : `${JSON.stringify(images.map((image, i) => ({ image, embedding: Array.from(rows[i] ?? []) })))}\n`)
      out(`${rows.length} embeddings of ${rows[0]?.length ?? 0} values written to ${file}`)
    })
}

function buildProgram (): Command {
  const program = new Command('siamese-torch')
    .description('Train and use Siamese networks natively with LibTorch')
    .version(packageVersion(), '--version', 'print the package version')
    .option('--verbose', 'show stack traces of errors')
    .exitOverride()
  defineInfoCommand(program)
  defineTrainCommand(program)
  defineEvalCommand(program)
  defineCompareCommand(program)
  defineClassifyCommand(program)
  defineEmbedCommand(program)
  defineServeCommand(program)
  return program
}

async function main (argv: string[]): Promise<number> {
  const program = buildProgram()
  try {
    await program.parseAsync(argv, { from: 'user' })
    return typeof process.exitCode === 'number' ? process.exitCode : 0
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has printed its one line already (or the help, or the version).
      return err.exitCode === 0 ? 0 : EXIT_USAGE
    }
    if (err instanceof UsageError) {
      process.stderr.write(`siamese-torch: ${err.message}\n`)
      return EXIT_USAGE
    }
    const verbose = argv.includes('--verbose')
    if (err instanceof SiameseTorchError) {
      process.stderr.write(`siamese-torch${rankPrefix()}: ${err.code}: ${err.message}\n`)
      if (verbose && err.stack) process.stderr.write(`${err.stack}\n`)
      return err.code === 'ERR_INVALID_ARG' ? EXIT_USAGE : EXIT_FAILURE
    }
    process.stderr.write(`siamese-torch: ${err instanceof Error ? err.message : String(err)}\n`)
    if (verbose && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`)
    return EXIT_FAILURE
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (err: unknown) => {
  // main() reports its own failures; this is only a last resort.
  process.stderr.write(`siamese-torch: ${String(err)}\n`)
  process.exitCode = EXIT_FAILURE
})
