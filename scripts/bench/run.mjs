#!/usr/bin/env node
// npm run bench: siamese-torch against PyTorch (Python) on the reference recipe, side by side,
// on the same data, thread count and fixed test pairs, in interleaved runs (A B C D E A B C D E ...):
//   A  siamese-torch from Node (scripts/bench/ours.mjs),
//   B  the same work in a plain C++ binary built from native/core (native/bench/core_bench.cc),
//      which measures the addon's overhead (on the digits),
//   C  PyTorch running our faithful script of the recipe (scripts/bench/reference.py) as the
//      recipe wrote it, on the system's BLAS and malloc,
//   D  PyTorch at its best in fp32: the same script --batched --memory-format auto, on OpenBLAS
//      and the malloc that measured best for it (common.mjs: pytorchBestEnv),
//   E  PyTorch at its best in bf16: D with --precision bf16 (autocast), where the CPU has bf16,
//   and siamese-torch in bf16 (ours.mjs --precision bf16), where the CPU has bf16 and the
//   library takes the option; and siamese-torch once under D's BLAS and malloc.
// Data: the embedded digits, and Fashion-MNIST at full size when Debian's dataset-fashion-mnist
// is installed. Writes scripts/bench/results/<date>-bench.json and .md and prints the table.
// Training's GFLOP/s is set against this machine's fp32 peak as measured by scripts/bench/peak.mjs
// (its newest results/*-peak.json of the same CPU model and CPU count), or, where there is none,
// against a figure assumed from /proc/cpuinfo, labelled so.
// Usage: node scripts/bench/run.mjs [--reps 3] [--threads 2] [--extra-reps 2]
//   --extra-reps: repetitions of D, E and siamese-torch bf16 (at most --reps; 2 keeps the whole
//   of npm run bench near 20 minutes here).
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { datasets, version } from '../../dist/index.mjs'
import {
  buildBench, cpuHasBf16, interleave, lastJson, measuredPeak, median, pytorchBestEnv, pytorchLibraries, trainFlopsPerPair, writeResult
} from './common.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const reps = arg('reps', 3)
const threads = arg('threads', 2)
const extraReps = Math.min(reps, arg('extra-reps', 2))
const python = process.env.SIAMESE_TORCH_BENCH_PYTHON ?? '/usr/bin/python3'
const fashionDir = process.env.SIAMESE_TORCH_FASHION_DIR ?? '/usr/share/datasets/fashion-mnist'
const started = Date.now()

// The C++ side, built like the addon (same finder, flags and objects).
const coreBuild = buildBench('core_bench')

const sets = [{ name: 'embedded digits', dir: join(root, 'dist', 'data', 'mnist-embedded'), split: await datasets.embedded() }]
if (existsSync(join(fashionDir, 'train-images-idx3-ubyte.gz'))) {
  sets.push({ name: 'Fashion-MNIST (60,000 + 10,000)', dir: fashionDir, split: await datasets.idx(fashionDir) })
} else {
  console.error(`no Fashion-MNIST in ${fashionDir}: apt-get install dataset-fashion-mnist to include it`)
}

const best = pytorchBestEnv(threads)
const bf16 = cpuHasBf16()
const noBf16 = 'the CPU has neither avx512_bf16 nor amx_bf16 (/proc/cpuinfo): no native bf16 to measure'
const ours = (set, seed, extra = [], env = process.env) => lastJson(execFileSync(process.execPath,
  [join(here, 'ours.mjs'), String(threads), String(seed), ...(set.embedded ? [] : [set.dir]), ...extra], { encoding: 'utf8', env }))
const pytorch = (set, seed, extra = [], env = process.env) => {
  const summary = lastJson(execFileSync(python, [join(here, 'reference.py'), '--data', set.dir, '--pairs', set.pairsFile,
    '--epochs', '1', '--threads', String(threads), '--seed', String(seed), ...extra], { encoding: 'utf8', env }))
  const h = summary.history[0]
  return {
    tool: 'pytorch',
    torch: summary.torch,
    trainPairsPerSecond: h.pairsPerSecond,
    testAccuracy: h.testAccuracy,
    evalPairsPerSecond: h.evalPairsPerSecond,
    maxRssMiB: summary.maxRssMiB,
    // How it ran: what reference.py reports of itself (the BLAS and malloc from /proc/self/maps).
    batched: summary.batched,
    memoryFormat: summary.memoryFormat,
    precision: summary.precision,
    evalPrecision: h.evalPrecision,
    ...pytorchLibraries(summary)
  }
}
const bestArgs = ['--batched', '--memory-format', 'auto']

const tools = {
  ours: (set, seed) => ours(set, seed),
  core: (set, seed) => lastJson(execFileSync(join(coreBuild, 'core_bench'), [set.dir, String(threads), String(seed)], { encoding: 'utf8' })),
  // The event-loop stalls a user sees: the first call (loading LibTorch) and training's start.
  stalls: (set) => ({
    trainPairsPerSecond: 0,
    ...lastJson(execFileSync(process.execPath, [join(here, 'stalls.mjs'), ...(set.embedded ? [] : [set.dir])], { encoding: 'utf8' }))
  }),
  pytorch: (set, seed) => pytorch(set, seed),
  pytorchBest: (set, seed) => ({ ...pytorch(set, seed, bestArgs, best.env), tool: 'pytorch-best-fp32' }),
  pytorchBf16: (set, seed) => ({ ...pytorch(set, seed, [...bestArgs, '--precision', 'bf16'], best.env), tool: 'pytorch-bf16-autocast' }),
  oursBf16: (set, seed) => ours(set, seed, ['--precision', 'bf16']),
  oursBestEnv: (set, seed) => ours(set, seed, [], best.env)
}

const results = []
let oursBf16Skip
for (const [i, set] of sets.entries()) {
  set.embedded = i === 0
  // The same fixed test pairs for every tool.
  const p = datasets.testPairs(set.split.test)
  set.pairsFile = join(tmpdir(), `siamese-bench-pairs-${process.pid}-${i}.json`)
  writeFileSync(set.pairsFile, JSON.stringify({ left: [...p.left], right: [...p.right], same: [...p.same] }))
  // The C++ binary measures the addon's overhead once, on the digits (it keeps the run short).
  // The extra variants may be skipped (no bf16 on this CPU, a library without `precision`, a
  // failure of theirs): a note in the table, never a failed benchmark.
  const plan = {
    ours: {},
    ...(set.embedded ? { core: {} } : {}),
    pytorch: {},
    stalls: {},
    pytorchBest: { reps: extraReps, optional: true },
    pytorchBf16: { reps: extraReps, optional: true, skip: bf16 ? undefined : noBf16 },
    oursBf16: { reps: extraReps, optional: true, skip: bf16 ? oursBf16Skip : noBf16 },
    oursBestEnv: { reps: 1, optional: true }
  }
  const { runs, skipped } = interleave(Object.fromEntries(Object.entries(plan).map(([tool, t]) => [tool, { ...t, run: (r) => tools[tool](set, r) }])),
    reps, (tool, x, r) => console.error(`${set.name}, rep ${r + 1}/${reps}: ${tool} ${x.trainPairsPerSecond.toFixed(0)} pairs/s`))
  // A library that does not take precision says so once: the other data set does not ask again.
  if (runs.oursBf16 === undefined && skipped.oursBf16?.startsWith('train() refused')) oursBf16Skip = skipped.oursBf16
  const m = (tool, key) => median(runs[tool].map((x) => x[key]))
  const keys = ['trainPairsPerSecond', 'evalPairsPerSecond', 'testAccuracy', 'maxRssMiB', 'maxRssWithPredictMiB', 'predictMedianMs', 'predictP99Ms',
    'batch1024PairsPerSecond', 'eventLoopMaxDelayMs', 'classify100Ms', 'loadMs', 'trainStartStallMs', 'trainStallMs']
  const medians = {}
  for (const key of keys) {
    medians[key] = {}
    for (const tool of Object.keys(runs)) if (runs[tool][0][key] !== undefined) medians[key][tool] = m(tool, key)
  }
  const range = (tool, key) => [Math.min(...runs[tool].map((x) => x[key])), Math.max(...runs[tool].map((x) => x[key]))]
  results.push({
    data: set.name,
    testPairs: p.left.length,
    runs,
    medians,
    accuracyRange: Object.fromEntries(Object.keys(runs).filter((t) => runs[t][0].testAccuracy !== undefined).map((t) => [t, range(t, 'testAccuracy')])),
    skipped
  })
}

const flopsPerPair = trainFlopsPerPair
// The fp32 peak assumed when this machine has no measurement: cores x clock x FLOP per cycle.
// AMD Zen 4 (family 25 with AVX-512) runs 512-bit FMAs on 256-bit units: 2 FMA x 8 lanes x 2 = 32
// FLOP/cycle; Intel AVX-512 server cores and Zen 5 have two 512-bit FMA units (64); AVX2 + FMA
// (32); otherwise SSE (8). The clock is /proc/cpuinfo's, which under a hypervisor is the nominal
// one, not the one the cores run at (peak.mjs measures both).
const cpuInfo = readFileSync('/proc/cpuinfo', 'utf8')
const mhz = Number(/cpu MHz\s*:\s*([\d.]+)/.exec(cpuInfo)?.[1] ?? 0)
const amd = /AuthenticAMD/.test(cpuInfo)
const avx512 = /\bavx512f\b/.test(cpuInfo)
const family = Number(/cpu family\s*:\s*(\d+)/.exec(cpuInfo)?.[1] ?? 0)
const flopsPerCycle = avx512 ? (amd && family <= 25 ? 32 : 64) : /\bavx2\b/.test(cpuInfo) && /\bfma\b/.test(cpuInfo) ? 32 : 8
const assumedPeakGflops = (mhz / 1000) * flopsPerCycle * threads
const assumedArithmetic = `${mhz} MHz x ${flopsPerCycle} fp32 FLOP/cycle x ${threads} cores`
const measured = measuredPeak(threads)
const peakGflops = measured?.gflops ?? assumedPeakGflops
const peakWords = measured
  ? `the measured fp32 peak (${peakGflops.toFixed(0)} GFLOP/s on ${measured.threads} thread${measured.threads > 1 ? 's' : ''}, ` +
    `from ${measured.file}, measured by \`node scripts/bench/peak.mjs\`)`
  : `the ${peakGflops.toFixed(0)} GFLOP/s fp32 peak assumed (${assumedArithmetic}; not measured: ` +
    'run `node scripts/bench/peak.mjs` to measure it)'

const main = results[0].medians
const result = {
  date: new Date().toISOString().slice(0, 10),
  machine: `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} vCPUs, ${threads} threads per tool`,
  versions: { siameseTorch: version().siameseTorch, libtorch: version().libtorch, pytorch: results[0].runs.pytorch[0]?.torch },
  method: 'reference recipe (docs/recipe.md): batch 64, Adam, 1 epoch of 5,000 reference triplets (10,000 labelled pairs); ' +
    `interleaved siamese-torch / C++ / PyTorch faithful x ${reps}, PyTorch best fp32 / bf16 and siamese-torch bf16 x ${extraReps}, ` +
    'medians; the same fixed test pairs for every tool; each run a fresh process',
  pytorchBest: { asked: best.asked, notes: best.notes },
  results,
  flops: {
    perTrainingPair: flopsPerPair,
    achievedGflops: (main.trainPairsPerSecond.ours * flopsPerPair) / 1e9,
    peakGflops,
    // What peakGflops is: measured (and where), or the arithmetic it was assumed from.
    peakSource: measured ? 'measured' : 'assumed',
    peakAssumes: measured ? `measured: ${measured.file} (${measured.measuredAt}), ${measured.threads} threads` : assumedArithmetic,
    peakFile: measured?.file,
    assumedPeakGflops,
    assumedArithmetic
  },
  minutes: (Date.now() - started) / 60000
}

const f0 = (x) => (x === undefined ? '' : x.toFixed(0))
const f2 = (x) => (x === undefined ? '' : x.toFixed(2))
const pct = (x) => (x === undefined ? '' : `${(100 * x).toFixed(2)}%`)
const columns = [['ours', 'siamese-torch'], ['oursBf16', 'siamese-torch bf16'], ['core', 'C++ binary'], ['pytorch', 'PyTorch faithful (C)'],
  ['pytorchBest', 'PyTorch best fp32 (D)'], ['pytorchBf16', 'PyTorch bf16 autocast (E)']]
const ratios = [['ours', 'pytorch', 'siamese-torch / PyTorch faithful'], ['ours', 'pytorchBest', 'siamese-torch / PyTorch best fp32'],
  ['oursBf16', 'pytorchBf16', 'siamese-torch bf16 / PyTorch bf16 autocast']]
const labels = Object.fromEntries([...columns, ['oursBestEnv', "siamese-torch under D's BLAS and malloc"]])
const empty = ' |'.repeat(columns.length + ratios.length)
const rows = [`| figure (${threads} threads, medians of ${reps}; D, E and bf16: ${extraReps}) | ${columns.map((c) => c[1]).join(' | ')} | ${ratios.map((c) => c[2]).join(' | ')} |`,
  `| --- |${' --- |'.repeat(columns.length + ratios.length)}`]
const notes = []
for (const r of results) {
  const md = r.medians
  // One table row: the median of each tool that has the figure, then the ratios asked for.
  const row = (label, key, fmt, { ratio = false, cell } = {}) => {
    const value = (tool) => md[key]?.[tool]
    const cells = columns.map(([tool]) => (cell ? cell(tool) : value(tool) === undefined ? '' : fmt(value(tool))))
    const both = (a, b) => ratio && value(a) !== undefined && value(b) !== undefined
    const rs = ratios.map(([a, b]) => (both(a, b) ? `${(value(a) / value(b)).toFixed(2)}x` : ''))
    return `| ${label} | ${cells.join(' | ')} | ${rs.join(' | ')} |`
  }
  const range = (tool) => (r.runs[tool].length > 1 ? ` (${r.accuracyRange[tool].map(pct).join('..')})` : '')
  const accuracy = (tool) => (md.testAccuracy[tool] === undefined ? '' : `${pct(md.testAccuracy[tool])}${range(tool)}`)
  const predict = (tool) => (md.predictMedianMs[tool] === undefined ? '' : `${f2(md.predictMedianMs[tool])} / ${f2(md.predictP99Ms[tool])}`)
  const stalls = (key, fmt) => (tool) => (tool === 'ours' && md[key].stalls !== undefined ? fmt(md[key].stalls) : '')
  rows.push(`| **${r.data}** |${empty}`,
    row('training throughput (labelled pairs/s)', 'trainPairsPerSecond', f0, { ratio: true }),
    row('evaluation throughput (test pairs/s)', 'evalPairsPerSecond', f0, { ratio: true }),
    row(`test pair accuracy after 1 epoch (${r.testPairs} pairs; min..max)`, 'testAccuracy', pct, { cell: accuracy }),
    row('peak resident memory, training and evaluation (MiB)', 'maxRssMiB', f0, { ratio: true }),
    row('peak resident memory, with the predict figures below (MiB)', 'maxRssWithPredictMiB', f0),
    row('single-pair predict, median / p99 (ms)', 'predictMedianMs', f2, { cell: predict }),
    row('batch-1024 predict (pairs/s)', 'batch1024PairsPerSecond', f0),
    row('largest event-loop delay during training (ms, 5 ms resolution)', 'eventLoopMaxDelayMs', (x) => x.toFixed(1)),
    row('the first call, which loads the addon and LibTorch: blocks for (ms)', 'loadMs', f0, { cell: stalls('loadMs', f0) }),
    row('largest event-loop stall from train() to its first batch (ms, 1 ms resolution)', 'trainStartStallMs', f2, { cell: stalls('trainStartStallMs', f2) }),
    row('largest event-loop stall over an epoch (ms, 1 ms resolution)', 'trainStallMs', f2, { cell: stalls('trainStallMs', f2) }))
  // How each tool really ran (what it read back from /proc/self/maps), and what was skipped.
  const how = (tool) => {
    const [x] = r.runs[tool]
    const libraries = `${labels[tool]}: ${x.blas?.name ?? x.blas}, ${x.allocator?.name ?? x.allocator}`
    if (x.memoryFormat === undefined) return libraries
    const formats = [...new Set(r.runs[tool].map((y) => y.memoryFormat))].join(' or ')
    const passes = x.batched ? 'one batched forward a step' : "the recipe's 4 tower passes a triplet"
    return `${libraries}, ${passes}, ${formats}, ${x.precision} (evaluated in ${x.evalPrecision}), ATen ${x.cpuCapability}`
  }
  notes.push(`${r.data}: ${['ours', 'pytorch', 'pytorchBest', 'pytorchBf16'].filter((t) => r.runs[t]).map(how).join('; ')}.`)
  const e = r.runs.oursBestEnv?.[0]
  if (e) {
    notes.push(`${r.data}, ${labels.oursBestEnv} (1 run, it loaded ${e.blas.name} and ${e.allocator.name}): training ${f0(e.trainPairsPerSecond)} ` +
      `pairs/s, evaluation ${f0(e.evalPairsPerSecond)} test pairs/s, peak ${f0(e.maxRssMiB)} MiB (siamese-torch's medians: ${f0(md.trainPairsPerSecond.ours)}, ` +
      `${f0(md.evalPairsPerSecond.ours)}, ${f0(md.maxRssMiB.ours)}).`)
  }
  for (const [tool, why] of Object.entries(r.skipped)) notes.push(`${r.data}: ${labels[tool]} skipped: ${why}`)
}
if (best.notes.length) notes.push(...best.notes)
const overhead = 100 * (1 - main.trainPairsPerSecond.ours / main.trainPairsPerSecond.core)
rows.push('', `Addon overhead on training (embedded digits): ${overhead.toFixed(1)}% slower than the C++ binary ` +
  '(negative: faster; within run-to-run noise when small).',
`Training on the embedded digits: ${result.flops.achievedGflops.toFixed(1)} GFLOP/s, ` +
  `${(100 * result.flops.achievedGflops / peakGflops).toFixed(1)}% of ${peakWords}. Whole benchmark: ${result.minutes.toFixed(1)} minutes.`,
'', ...notes.map((n) => `- ${n}`))
const table = rows.join('\n')
// A second run on the same day gets its own files: committed results are never overwritten.
writeResult('bench', result.date, result, `# Benchmark, ${result.date}\n\n${result.machine}. ${result.method}.\n` +
  `Versions: siamese-torch ${result.versions.siameseTorch}, LibTorch ${result.versions.libtorch}, PyTorch ${result.versions.pytorch}.\n\n${table}\n`)
console.log(table)
