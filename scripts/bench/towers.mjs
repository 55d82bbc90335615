#!/usr/bin/env node
// The tower benchmark (part of npm run bench): siamese-torch's 'conv4' and 'resnet18' towers at
// 64x64x3 against PyTorch + torchvision (scripts/bench/towers.py) on the same images, batch size,
// thread count and test pairs, in interleaved runs (ours, PyTorch, ours, PyTorch ...), each run a
// fresh process. Also the decoding throughput of datasets.imageFolder (sharp, in parallel).
// PyTorch runs on OpenBLAS with the malloc that measured best for it (common.mjs: pytorchBestEnv).
// Where the CPU has bf16, two more tools: PyTorch with bf16 autocast (towers.py --precision bf16)
// and siamese-torch in bf16 (when the library takes `precision`; otherwise a note).
// Data: coloured shapes drawn with sharp at run time (test/helpers/shapes.mjs); nothing is downloaded.
// Writes scripts/bench/results/<date>[-N]-towers.json and .md and prints the table.
// Usage: node scripts/bench/towers.mjs [--reps 2] [--threads 2] [--train 1280] [--decode 2000] [--extra-reps 1]
//          (--extra-reps: repetitions of the two bf16 tools, at most --reps)
//        node scripts/bench/towers.mjs --child TOWER DIR THREADS [--precision fp32|bf16]
//          (one siamese-torch run; prints JSON, or { skipped } when the library refuses the precision)
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { createModel, datasets, version } from '../../dist/index.mjs'
import { writeShapes } from '../../test/helpers/shapes.mjs'
import { cpuHasBf16, evaluateIn, interleave, lastJson, median, precisionOption, pytorchBestEnv, pytorchLibraries, trainIn } from './common.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const SIZE = 64
const EMBEDDING = 128
const BATCH = 64
const MEAN = [0.485, 0.456, 0.406]
const STD = [0.229, 0.224, 0.225]

/** One siamese-torch run: an epoch of the balanced scheme, then the fixed test pairs evaluated. */
async function child (tower, dir, threads, args) {
  // fp32 passes nothing (the run is what it always was); another precision goes to train() and
  // evaluate(), and a library that refuses it in train() makes this run a { skipped } note.
  const { precision, options } = precisionOption(args)
  const data = await datasets.imageFolder(dir, { width: SIZE, height: SIZE, channels: 3, testFraction: 0.2 })
  const model = await createModel({ tower, width: SIZE, height: SIZE, channels: 3, embeddingSize: EMBEDDING, mean: MEAN, std: STD, threads })
  const trained = await trainIn(precision, () => model.train({ data, epochs: 1, batchSize: BATCH, threads, saveEvery: 0, ...options }))
  if (trained === undefined) return
  const { history } = trained
  // Measured warm, as PyTorch's: one evaluation first (the compute thread's start, oneDNN's
  // inference primitives), then the timed one.
  await evaluateIn(model, data.test, precision)
  const { metrics, seconds: evalSeconds, evalPrecision } = await evaluateIn(model, data.test, precision)
  console.log(JSON.stringify({
    tool: 'siamese-torch',
    precision,
    evalPrecision,
    trainPairsPerSecond: history[0].pairsPerSecond,
    evalPairsPerSecond: metrics.pairs / evalSeconds,
    testAccuracy: history[0].testAccuracy,
    steps: Math.ceil(data.train.count / BATCH)
  }))
  model.dispose()
}

if (process.argv[2] === '--child') {
  await child(process.argv[3], process.argv[4], Number(process.argv[5]), process.argv.slice(6))
  process.exit(0)
}

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const reps = arg('reps', 2)
const threads = arg('threads', 2)
const extraReps = Math.min(reps, arg('extra-reps', 1))
const trainCount = arg('train', 1280)
const decodeCount = arg('decode', 2000)
const python = process.env.SIAMESE_TORCH_BENCH_PYTHON ?? '/usr/bin/python3'
const started = Date.now()
const scratch = mkdtempSync(join(tmpdir(), 'siamese-bench-towers-'))

try {
  // The data: four classes of coloured shapes, 80% train, 20% test (imageFolder's split).
  const perClass = Math.ceil(trainCount / 4 / 0.8)
  const dir = await writeShapes(join(scratch, 'shapes'), { perClass, size: 80, seed: 11 })
  const data = await datasets.imageFolder(dir, { width: SIZE, height: SIZE, channels: 3 })
  const { train, test } = data
  // PyTorch reads the same pixels, triplets (the balanced scheme's first epoch) and test pairs.
  const file = (name, array) => { const f = join(scratch, name); writeFileSync(f, array); return f }
  // Two epochs' worth: PyTorch's 3 untimed warm-up steps come on top of the epoch it times.
  const epochs = [0, 1].map((epoch) => datasets.triplets(train, { scheme: 'balanced', seed: 0, epoch }))
  const interleaved = new Int32Array(epochs.flatMap((t) => Array.from(t.anchor, (a, i) => [a, t.positive[i], t.negative[i]]).flat()))
  const triplets = file('triplets.bin', new Uint8Array(interleaved.buffer))
  // The test pairs: ours are drawn on the test split; PyTorch's index the same images appended after train.
  const p = datasets.testPairs(test)
  const pairsArray = new Int32Array(2 * p.left.length)
  p.left.forEach((l, i) => pairsArray.set([train.count + l, train.count + p.right[i]], 2 * i))
  const allPixels = file('all-pixels.bin', Buffer.concat([Buffer.from(train.images), Buffer.from(test.images)]))
  const allLabels = file('all-labels.bin', new Uint8Array(Int32Array.from([...train.labels, ...test.labels]).buffer))
  const evalPairs = file('pairs.bin', new Uint8Array(pairsArray.buffer))
  const steps = Math.ceil(train.count / BATCH)

  const best = pytorchBestEnv(threads)
  const bf16 = cpuHasBf16()
  const noBf16 = 'the CPU has neither avx512_bf16 nor amx_bf16 (/proc/cpuinfo): no native bf16 to measure'
  const ours = (tower, extra = []) => lastJson(execFileSync(process.execPath,
    [fileURLToPath(import.meta.url), '--child', tower, dir, String(threads), ...extra], { encoding: 'utf8' }))
  const pytorch = (tower, extra) => {
    const r = lastJson(execFileSync(python, [join(here, 'towers.py'), '--tower', tower, '--data', allPixels, '--labels', allLabels,
      '--count', String(train.count + test.count), '--width', String(SIZE), '--height', String(SIZE), '--channels', '3',
      '--embedding', String(EMBEDDING), '--triplets', triplets, '--batch', String(BATCH), '--threads', String(threads),
      '--max-batches', String(steps + 3), '--eval-pairs', evalPairs, '--mean', MEAN.join(','), '--std', STD.join(','), ...extra],
    { encoding: 'utf8', env: best.env }))
    return {
      tool: 'pytorch',
      trainPairsPerSecond: r.train_pairs_per_second,
      evalPairsPerSecond: r.eval_pairs_per_second,
      // PyTorch's own best for CPU inference: the tower traced and optimize_for_inference'd.
      optimizedEvalPairsPerSecond: r.eval_optimized_pairs_per_second,
      memoryFormat: r.memory_format,
      precision: r.precision,
      ...pytorchLibraries(r),
      torch: r.torch,
      torchvision: r.torchvision
    }
  }
  // PyTorch on OpenBLAS with its best malloc; the bf16 variants only where the CPU has bf16, and
  // siamese-torch's only while the library takes `precision` (the first refusal is noted once).
  let oursBf16Skip
  const plan = (tower) => ({
    ours: { run: () => ours(tower) },
    pytorch: { run: () => pytorch(tower, ['--eval-optimized']) },
    oursBf16: { reps: extraReps, optional: true, skip: bf16 ? oursBf16Skip : noBf16, run: () => ours(tower, ['--precision', 'bf16']) },
    pytorchBf16: { reps: extraReps, optional: true, skip: bf16 ? undefined : noBf16, run: () => ({ ...pytorch(tower, ['--precision', 'bf16']), tool: 'pytorch-bf16-autocast' }) }
  })

  const results = []
  for (const tower of ['conv4', 'resnet18']) {
    const { runs, skipped } = interleave(plan(tower), reps, (tool, x, r) => console.error(`${tower}, rep ${r + 1}/${reps}: ${tool} ` +
      `${x.trainPairsPerSecond.toFixed(1)} training pairs/s, ${x.evalPairsPerSecond.toFixed(0)} evaluation pairs/s`))
    if (runs.oursBf16 === undefined && skipped.oursBf16?.startsWith('train() refused')) oursBf16Skip = skipped.oursBf16
    const m = (tool, key) => (runs[tool] ? median(runs[tool].map((x) => x[key])) : undefined)
    const medians = (key) => Object.fromEntries(Object.keys(runs).map((t) => [t, m(t, key)]))
    results.push({
      tower,
      runs,
      medians: {
        trainPairsPerSecond: medians('trainPairsPerSecond'),
        evalPairsPerSecond: medians('evalPairsPerSecond'),
        optimizedEvalPairsPerSecond: { ours: m('ours', 'evalPairsPerSecond'), pytorch: m('pytorch', 'optimizedEvalPairsPerSecond') }
      },
      skipped
    })
  }

  // Decoding: PNG files of 160x160 decoded and resized to 105x105x3 by datasets.imageFolder.
  const decodeDir = await writeShapes(join(scratch, 'decode'), { perClass: Math.ceil(decodeCount / 4), size: 160, seed: 5 })
  let t0 = performance.now()
  const decoded = await datasets.imageFolder(decodeDir, { width: 105, height: 105, channels: 3 })
  const decodeSeconds = (performance.now() - t0) / 1000
  const imagesDecoded = decoded.train.count + decoded.test.count
  t0 = performance.now()

  const result = {
    date: new Date().toISOString().slice(0, 10),
    machine: `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} vCPUs, ${threads} threads per tool`,
    versions: { siameseTorch: version().siameseTorch, libtorch: version().libtorch, pytorch: results[0].runs.pytorch[0]?.torch, torchvision: results[0].runs.pytorch[0]?.torchvision },
    method: `towers at ${SIZE}x${SIZE}x3, embedding ${EMBEDDING}, pair-ce head, Adam, batch ${BATCH} triplets; ${train.count} training images ` +
      `(${steps} steps: one epoch of ours, the same number of PyTorch steps after 3 untimed warm-up steps), ${p.left.length} test pairs; ` +
      `interleaved siamese-torch / PyTorch x ${reps} (the bf16 variants x ${extraReps}), medians; each run a fresh process; ` +
      'PyTorch in its faster memory format (probed), on OpenBLAS with its best malloc; evaluation measured warm for both (one untimed evaluation first)',
    pytorchBest: { asked: best.asked, notes: best.notes },
    results,
    decode: { images: imagesDecoded, seconds: decodeSeconds, imagesPerSecond: imagesDecoded / decodeSeconds, what: '160x160 PNG -> 105x105x3' },
    minutes: (Date.now() - started) / 60000
  }
  const columns = [['ours', 'siamese-torch'], ['oursBf16', 'siamese-torch bf16'], ['pytorch', 'PyTorch'], ['pytorchBf16', 'PyTorch bf16 autocast']]
  const ratios = [['ours', 'pytorch', 'siamese-torch / PyTorch'], ['oursBf16', 'pytorchBf16', 'siamese-torch bf16 / PyTorch bf16 autocast']]
  const labels = Object.fromEntries(columns)
  const rows = [`| tower at ${SIZE}x${SIZE}x3 (${threads} threads, medians of ${reps}; bf16: ${extraReps}) | ${columns.map((c) => c[1]).join(' | ')} | ` +
    `${ratios.map((c) => c[2]).join(' | ')} |`, `| --- |${' --- |'.repeat(columns.length + ratios.length)}`]
  const notes = []
  for (const r of results) {
    const md = r.medians
    const row = (label, key, digits) => {
      const value = (tool) => md[key][tool]
      const cells = columns.map(([tool]) => (value(tool) === undefined ? '' : value(tool).toFixed(digits)))
      const rs = ratios.map(([a, b]) => (value(a) !== undefined && value(b) !== undefined ? `${(value(a) / value(b)).toFixed(2)}x` : ''))
      return `| ${label} | ${cells.join(' | ')} | ${rs.join(' | ')} |`
    }
    const formats = (tool) => (r.runs[tool] ? ` ${labels[tool]} in ${[...new Set(r.runs[tool].map((x) => x.memoryFormat))].join(' or ')}` : '')
    rows.push(`| **${r.tower}** (${[formats('pytorch'), formats('pytorchBf16')].filter(Boolean).join(',').trim()}) |${' |'.repeat(columns.length + ratios.length)}`,
      row('training throughput (labelled pairs/s)', 'trainPairsPerSecond', 1),
      row('evaluation throughput (test pairs/s)', 'evalPairsPerSecond', 0),
      row("evaluation against TorchScript's optimize_for_inference, fp32 (test pairs/s)", 'optimizedEvalPairsPerSecond', 0))
    for (const [tool, why] of Object.entries(r.skipped)) notes.push(`${r.tower}: ${labels[tool]} skipped: ${why}`)
  }
  const [x] = results[0].runs.pytorch
  notes.unshift(`PyTorch ran on ${x.blas} with ${x.allocator} (read from its /proc/self/maps), ATen ${x.cpuCapability}.`, ...best.notes)
  rows.push('', `datasets.imageFolder decoding (${result.decode.what}, sharp, 8 at a time): ${result.decode.imagesPerSecond.toFixed(0)} images/s ` +
    `(${imagesDecoded} images in ${decodeSeconds.toFixed(1)} s). Whole tower benchmark: ${result.minutes.toFixed(1)} minutes.`,
  '', ...notes.map((n) => `- ${n}`))
  const table = rows.join('\n')
  const out = join(here, 'results')
  mkdirSync(out, { recursive: true })
  let name = `${result.date}-towers`
  for (let n = 2; existsSync(join(out, `${name}.json`)); n++) name = `${result.date}-${n}-towers`
  writeFileSync(join(out, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`)
  writeFileSync(join(out, `${name}.md`), `# Tower benchmark, ${result.date}\n\n${result.machine}. ${result.method}.\n` +
    `Versions: siamese-torch ${result.versions.siameseTorch}, LibTorch ${result.versions.libtorch}, PyTorch ${result.versions.pytorch}, ` +
    `torchvision ${result.versions.torchvision}.\n\n${table}\n`)
  console.log(table)
} finally {
  rmSync(scratch, { recursive: true, force: true })
}
