#!/usr/bin/env node
// The siamese-torch command line: train, eval, compare, classify, embed, info.
// Arguments are parsed with commander, progress drawn with cli-progress.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { extname, join, resolve } from 'node:path'

import { SingleBar } from 'cli-progress'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'

import { datasets } from './datasets/index.js'
import { findIdxFile } from './datasets/idx.js'
import { classFolderSet } from './datasets/image-folder.js'
import type { DataSplit } from './datasets/types.js'
import { SiameseTorchError } from './errors.js'
import { loadModel, train, type SiameseModel } from './model.js'
import { curvesSvg, embeddingMapSvg, pairsSheetSvg, writeSvgAndPng } from './report.js'
import type { EpochMetrics, ProgressEvent, TrainOptions } from './train.js'
import { packageVersion, version, type VersionInfo } from './version.js'

// Exit codes: 0 done, 1 a runtime failure, 2 a usage error, 130 stopped by Ctrl-C.
const EXIT_FAILURE = 1
const EXIT_USAGE = 2
const EXIT_INTERRUPTED = 130

class UsageError extends Error {}

function integer (min: number) {
  return (value: string): number => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`)
    return n
  }
}

function positiveNumber (value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number >= 0')
  return n
}

function out (line: string): void {
  process.stdout.write(`${line}\n`)
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
    `threads        ${v.threads}`,
    `Node.js        ${process.version}`
  ].join('\n')
}

/** --data: a named source, a folder of IDX files, or a folder of class folders of images. */
async function dataFrom (source: string, download: boolean, size?: { width: number, height: number }): Promise<DataSplit> {
  if (source === 'embedded') return datasets.embedded()
  if (source === 'mnist') return datasets.mnist({ download })
  if (source === 'fashion-mnist') return datasets.fashionMnist({ download })
  const dir = resolve(source)
  if (!existsSync(dir)) throw new UsageError(`--data: '${source}' is not embedded, mnist, fashion-mnist or an existing folder`)
  if (findIdxFile(dir, 'trainImages') !== undefined) return datasets.idx(dir)
  return datasets.imageFolder(dir, size ?? {})
}

function percent (x: number): string {
  return `${(100 * x).toFixed(2)}%`
}

function epochLine (m: EpochMetrics, epochs: number): string {
  return `epoch ${m.epoch}/${epochs}  train loss ${m.trainLoss.toFixed(4)}  test loss ${m.testLoss.toFixed(4)}  ` +
    `accuracy ${percent(m.testAccuracy)}  AUC ${m.auc.toFixed(4)}  ${m.pairsPerSecond.toFixed(0)} pairs/s  ${m.seconds.toFixed(1)} s`
}

function writeMetrics (dir: string, history: EpochMetrics[]): string[] {
  mkdirSync(dir, { recursive: true })
  const json = join(dir, 'metrics.json')
  const csv = join(dir, 'metrics.csv')
  writeFileSync(json, `${JSON.stringify(history, null, 2)}\n`)
  const columns = ['epoch', 'trainLoss', 'trainAccuracy', 'testLoss', 'testAccuracy', 'auc', 'threshold', 'seconds', 'pairsPerSecond'] as const
  writeFileSync(csv, [columns.join(','), ...history.map((h) => columns.map((c) => h[c]).join(','))].join('\n') + '\n')
  return [json, csv]
}

interface TrainFlags {
  data: string
  download?: boolean
  epochs: number
  batchSize: number
  lr: number
  weightDecay: number
  momentum: number
  optimizer: 'adam' | 'sgd'
  loss: 'pair-ce' | 'contrastive' | 'triplet'
  margin?: number
  mining: 'none' | 'batch-hard' | 'semi-hard'
  pairs: 'reference' | 'balanced'
  device: string
  threads?: number
  seed: number
  saveEvery: number
  embeddingSize: number
  out: string
  resume?: string
  json?: boolean
}

async function trainCommand (flags: TrainFlags): Promise<number> {
  const json = flags.json === true
  const tty = process.stdout.isTTY === true && !json
  const outDir = resolve(flags.out)
  const controller = new AbortController()
  let interrupted = false
  const onSigint = (): void => {
    if (interrupted) process.exit(EXIT_INTERRUPTED) // a second Ctrl-C: leave at once
    interrupted = true
    controller.abort()
  }
  process.on('SIGINT', onSigint)

  const history: EpochMetrics[] = []
  const written = new Set<string>()
  // Curves are redrawn after every epoch, in order, so that a stopped run still has them.
  let pictures: Promise<void> = Promise.resolve()
  const drawCurves = (snapshot: EpochMetrics[]): void => {
    pictures = pictures.then(async () => {
      for (const f of await writeSvgAndPng(await curvesSvg(snapshot, `Training on ${flags.data}`), join(outDir, 'curves'))) written.add(f)
    })
  }
  let bar: SingleBar | undefined
  const onProgress = (e: ProgressEvent): void => {
    if (json) {
      out(JSON.stringify(e))
    } else if (e.type === 'batch') {
      if (!tty) return
      if (!bar) {
        bar = new SingleBar({
          format: 'epoch {epoch}/{epochs} [{bar}] {value}/{total} batches | loss {loss} | {pps} pairs/s | ETA {eta_formatted}',
          hideCursor: true,
          clearOnComplete: true
        })
        bar.start(e.batches, 0, { epoch: e.epoch, epochs: e.epochs, loss: '-', pps: '-' })
      }
      bar.update(e.batch, { epoch: e.epoch, epochs: e.epochs, loss: e.loss.toFixed(4), pps: e.pairsPerSecond.toFixed(0) })
    } else if (e.type === 'epoch') {
      bar?.stop()
      bar = undefined
      out(epochLine(e, flags.epochs))
    }
    if (e.type === 'epoch') {
      history.push(e)
      for (const f of writeMetrics(outDir, history)) written.add(f)
      drawCurves([...history])
    } else if (e.type === 'file') {
      written.add(e.path)
    }
  }

  const options: TrainOptions = {
    epochs: flags.epochs,
    batchSize: flags.batchSize,
    lr: flags.lr,
    weightDecay: flags.weightDecay,
    momentum: flags.momentum,
    optimizer: flags.optimizer,
    mining: flags.mining,
    pairs: flags.pairs,
    seed: flags.seed,
    saveEvery: flags.saveEvery,
    outDir,
    onProgress,
    signal: controller.signal,
    ...(flags.threads === undefined ? {} : { threads: flags.threads }),
    ...(flags.device === undefined ? {} : { device: flags.device as NonNullable<TrainOptions['device']> })
  }
  if (flags.resume !== undefined) {
    options.resume = flags.resume
  } else {
    options.loss = flags.loss
    options.embeddingSize = flags.embeddingSize
    if (flags.margin !== undefined) options.margin = flags.margin
  }
  if (!json && !tty) out(`training on ${flags.data} for ${flags.epochs} epochs; writing to ${outDir}`)
  try {
    const data = await dataFrom(flags.data, flags.download === true)
    options.data = data
    const { model } = await train(options)
    try {
      await pictures
      const after = `after ${history.at(-1)?.epoch ?? 0} epochs`
      for (const f of await writeSvgAndPng(await pairsSheetSvg(model, data.test, `Fixed test pairs ${after}: P(same), green right, red wrong`), join(outDir, 'pairs'))) written.add(f)
      for (const f of await writeSvgAndPng(await embeddingMapSvg(model, data.test, `Test embeddings ${after}, PCA to 2-D`), join(outDir, 'embeddings'))) written.add(f)
    } finally {
      model.dispose()
    }
  } catch (err) {
    bar?.stop()
    await pictures.catch(() => {})
    if (err instanceof SiameseTorchError && err.code === 'ABORT_ERR' && interrupted) {
      const checkpoints = [...written].filter((f) => f.includes('checkpoint-epoch-'))
      const last = checkpoints.at(-1)
      if (json) out(JSON.stringify({ type: 'stopped', lastCheckpoint: last ?? null }))
      else out(`stopped by Ctrl-C; ${last ? `the last checkpoint is ${last} (resume with --resume ${last})` : 'no checkpoint was written yet'}`)
      return EXIT_INTERRUPTED
    }
    throw err
  } finally {
    process.off('SIGINT', onSigint)
  }

  const files = [...written].sort()
  if (json) {
    out(JSON.stringify({ type: 'done', history, files }))
  } else {
    out('')
    out('epoch  train loss  test loss  accuracy  AUC     seconds')
    for (const h of history) {
      out(`${String(h.epoch).padStart(5)}  ${h.trainLoss.toFixed(4).padStart(10)}  ${h.testLoss.toFixed(4).padStart(9)}  ` +
        `${percent(h.testAccuracy).padStart(8)}  ${h.auc.toFixed(4)}  ${h.seconds.toFixed(1).padStart(7)}`)
    }
    out('')
    out('written:')
    for (const f of files) out(`  ${f}`)
  }
  return 0
}

async function withModel<T> (path: string, work: (model: SiameseModel) => Promise<T>): Promise<T> {
  const model = await loadModel(path)
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

function buildProgram (): Command {
  const program = new Command('siamese-torch')
    .description('Train and use Siamese networks natively with LibTorch')
    .version(packageVersion(), '--version', 'print the package version')
    .option('--verbose', 'show stack traces of errors')
    .exitOverride()

  program.command('info')
    .description('versions, where LibTorch was found, CUDA devices, threads')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  siamese-torch info --json')
    .action((flags: { json?: boolean }) => {
      const info = version()
      out(flags.json ? JSON.stringify(info) : formatInfo(info))
    })

  program.command('train')
    .description('train a Siamese network (defaults: the reference recipe on the embedded digits)')
    .option('--data <source>', 'embedded, mnist, fashion-mnist, a folder of IDX files, or a folder of class folders', 'embedded')
    .option('--download', 'download mnist or fashion-mnist if missing (verified)')
    .option('--epochs <n>', 'epochs', integer(1), 10)
    .option('--batch-size <n>', 'triplets per batch (2 labelled pairs each)', integer(1), 64)
    .option('--lr <x>', 'learning rate', positiveNumber, 0.001)
    .option('--weight-decay <x>', 'L2 weight decay', positiveNumber, 0.0001)
    .option('--momentum <x>', 'SGD momentum', positiveNumber, 0.9)
    .addOption(new Option('--optimizer <name>', 'optimiser').choices(['adam', 'sgd']).default('adam'))
    .addOption(new Option('--loss <name>', 'loss').choices(['pair-ce', 'contrastive', 'triplet']).default('pair-ce'))
    .option('--margin <x>', 'margin of the contrastive and triplet losses', positiveNumber)
    .addOption(new Option('--mining <name>', 'triplet mining').choices(['none', 'batch-hard', 'semi-hard']).default('none'))
    .addOption(new Option('--pairs <scheme>', 'training pair scheme').choices(['reference', 'balanced']).default('balanced'))
    .option('--device <device>', 'auto, cpu, cuda or cuda:N', 'auto')
    .option('--threads <n>', 'LibTorch threads (default: LibTorch\'s)', integer(1))
    .option('--seed <n>', 'seed', integer(0), 0)
    .option('--save-every <n>', 'checkpoint every n epochs (0: none)', integer(0), 2)
    .option('--embedding-size <n>', 'embedding size', integer(1), 512)
    .option('--out <dir>', 'where the model, checkpoints and metrics go', 'siamese-out')
    .option('--resume <checkpoint>', 'continue from a checkpoint')
    .option('--json', 'print one JSON object per event (NDJSON) and nothing else on stdout')
    .addHelpText('after', '\nExample:\n  siamese-torch train --epochs 2 --out out\n  siamese-torch train --data fashion-mnist --download --loss triplet --mining semi-hard')
    .action(async (flags: TrainFlags) => { process.exitCode = await trainCommand(flags) })

  program.command('eval')
    .description('pair accuracy, AUC, threshold and N-way one-shot accuracy of a model')
    .argument('<model>', 'a .safetensors model')
    .option('--data <source>', 'embedded, mnist, fashion-mnist or a folder (its test split is used)', 'embedded')
    .option('--ways <n>', 'N of N-way one-shot (0: skip)', integer(0))
    .option('--episodes <n>', 'one-shot episodes', integer(1), 1000)
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  siamese-torch eval siamese-out/model.safetensors --ways 5')
    .action(async (path: string, flags: { data: string, ways?: number, episodes: number, json?: boolean }) => {
      const m = await withModel(path, async (model) => {
        const data = await dataFrom(flags.data, false, { width: model.config.width, height: model.config.height })
        return model.evaluate(data, { episodes: flags.episodes, ...(flags.ways === undefined ? {} : { ways: flags.ways }) })
      })
      if (flags.json) {
        out(JSON.stringify(m))
      } else {
        out(`pairs      ${m.pairs}`)
        out(`accuracy   ${percent(m.accuracy)}`)
        out(`AUC        ${m.auc.toFixed(4)}`)
        out(`threshold  ${m.threshold.toFixed(4)}`)
        out(`loss       ${m.loss.toFixed(4)}`)
        if (m.oneShotAccuracy !== null) out(`${m.oneShotWays}-way one-shot accuracy  ${percent(m.oneShotAccuracy)}`)
      }
    })

  program.command('compare')
    .description('the probability that two images show the same class')
    .argument('<model>', 'a .safetensors model')
    .argument('<a>', 'an image (PNG or JPEG)')
    .argument('<b>', 'another image')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  siamese-torch compare siamese-out/model.safetensors a.png b.png')
    .action(async (path: string, a: string, b: string, flags: { json?: boolean }) => {
      const p = await withModel(path, (model) => model.predict(a, b))
      out(flags.json ? JSON.stringify({ a, b, pSame: p }) : `P(same) = ${p.toFixed(4)}`)
    })

  program.command('classify')
    .description('one-shot classification against a folder of labelled examples')
    .argument('<model>', 'a .safetensors model')
    .argument('<queries...>', 'images to classify')
    .requiredOption('--support <dir>', 'examples, one sub-folder a class: DIR/<class>/*.png')
    .option('--json', 'print JSON (one object per query)')
    .addHelpText('after', '\nExample:\n  siamese-torch classify model.safetensors q1.png q2.png --support examples/')
    .action(async (path: string, queries: string[], flags: { support: string, json?: boolean }) => {
      const results = await withModel(path, async (model) => {
        const support = await classFolderSet(flags.support, model.config.width, model.config.height)
        return model.classify(queries, support)
      })
      results.forEach((r, i) => {
        out(flags.json
          ? JSON.stringify({ query: queries[i], className: r.className, probability: r.probability, scores: Object.fromEntries(r.classes.map((c, k) => [c, r.scores[k]])) })
          : `${queries[i]}: ${r.className} (${r.probability.toFixed(4)})`)
      })
    })

  program.command('embed')
    .description('embeddings of images, as JSON or .npy')
    .argument('<model>', 'a .safetensors model')
    .argument('<images...>', 'images')
    .requiredOption('--out <file>', 'FILE.json or FILE.npy')
    .addHelpText('after', '\nExample:\n  siamese-torch embed model.safetensors *.png --out embeddings.npy')
    .action(async (path: string, images: string[], flags: { out: string }) => {
      const ext = extname(flags.out).toLowerCase()
      if (ext !== '.json' && ext !== '.npy') throw new UsageError(`--out: '${flags.out}' must end in .json or .npy`)
      const rows = await withModel(path, (model) => model.embed(images))
      const file = resolve(flags.out)
      writeFileSync(file, ext === '.npy' ? npy(rows) : `${JSON.stringify(images.map((image, i) => ({ image, embedding: Array.from(rows[i] ?? []) })))}\n`)
      out(`${rows.length} embeddings of ${rows[0]?.length ?? 0} values written to ${file}`)
    })
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
      process.stderr.write(`siamese-torch: ${err.code}: ${err.message}\n`)
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
