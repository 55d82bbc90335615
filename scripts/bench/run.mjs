#!/usr/bin/env node
// npm run bench: siamese-torch against PyTorch (Python) on the reference recipe, side by side,
// on the same data, thread count and fixed test pairs, in interleaved runs (A B C A B C ...):
//   A  siamese-torch from Node (scripts/bench/ours.mjs),
//   B  the same work in a plain C++ binary built from native/core (native/bench/core_bench.cc),
//      which measures the addon's overhead,
//   C  PyTorch running our faithful script of the recipe (scripts/bench/reference.py).
// Data: the embedded digits, and Fashion-MNIST at full size when Debian's dataset-fashion-mnist
// is installed. Writes scripts/bench/results/<date>-bench.json and .md and prints the table.
// Training's GFLOP/s is set against this machine's fp32 peak as measured by scripts/bench/peak.mjs
// (its newest results/*-peak.json of the same CPU model and CPU count), or, where there is none,
// against a figure assumed from /proc/cpuinfo, labelled so.
// Usage: node scripts/bench/run.mjs [--reps 3] [--threads 2]
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { datasets, version } from '../../dist/index.mjs'
import { buildBench, lastJson, measuredPeak, median, trainFlopsPerPair, writeResult } from './common.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const reps = arg('reps', 3)
const threads = arg('threads', 2)
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

const tools = {
  ours: (set, seed) => lastJson(execFileSync(process.execPath,
    [join(here, 'ours.mjs'), String(threads), String(seed), ...(set.embedded ? [] : [set.dir])], { encoding: 'utf8' })),
  core: (set, seed) => lastJson(execFileSync(join(coreBuild, 'core_bench'), [set.dir, String(threads), String(seed)], { encoding: 'utf8' })),
  // The event-loop stalls a user sees: the first call (loading LibTorch) and training's start.
  stalls: (set) => ({
    trainPairsPerSecond: 0,
    ...lastJson(execFileSync(process.execPath, [join(here, 'stalls.mjs'), ...(set.embedded ? [] : [set.dir])], { encoding: 'utf8' }))
  }),
  pytorch: (set, seed) => {
    const summary = lastJson(execFileSync(python, [join(here, 'reference.py'), '--data', set.dir, '--pairs', set.pairsFile,
      '--epochs', '1', '--threads', String(threads), '--seed', String(seed)], { encoding: 'utf8' }))
    const h = summary.history[0]
    return {
      tool: 'pytorch',
      torch: summary.torch,
      trainPairsPerSecond: h.pairsPerSecond,
      testAccuracy: h.testAccuracy,
      evalPairsPerSecond: h.evalPairsPerSecond,
      maxRssMiB: summary.maxRssMiB
    }
  }
}

const results = []
for (const [i, set] of sets.entries()) {
  set.embedded = i === 0
  // The same fixed test pairs for every tool.
  const p = datasets.testPairs(set.split.test)
  set.pairsFile = join(tmpdir(), `siamese-bench-pairs-${process.pid}-${i}.json`)
  writeFileSync(set.pairsFile, JSON.stringify({ left: [...p.left], right: [...p.right], same: [...p.same] }))
  // The C++ binary measures the addon's overhead once, on the digits (it keeps the run under 15 minutes).
  const runs = set.embedded ? { ours: [], core: [], pytorch: [], stalls: [] } : { ours: [], pytorch: [], stalls: [] }
  for (let r = 0; r < reps; r++) {
    for (const tool of Object.keys(runs)) {
      runs[tool].push(tools[tool](set, r))
      console.error(`${set.name}, rep ${r + 1}/${reps}: ${tool} ${runs[tool].at(-1).trainPairsPerSecond.toFixed(0)} pairs/s`)
    }
  }
  const m = (tool, key) => median(runs[tool].map((x) => x[key]))
  const keys = ['trainPairsPerSecond', 'evalPairsPerSecond', 'testAccuracy', 'maxRssMiB', 'predictMedianMs', 'predictP99Ms',
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
    accuracyRange: { ours: range('ours', 'testAccuracy'), pytorch: range('pytorch', 'testAccuracy') }
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
    `interleaved siamese-torch / C++ / PyTorch x ${reps}, medians; the same fixed test pairs for every tool; each run a fresh process`,
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
const rows = [`| figure (${threads} threads, medians of ${reps}) | siamese-torch | C++ binary | PyTorch | siamese-torch / PyTorch |`,
  '| --- | --- | --- | --- | --- |']
for (const r of results) {
  const md = r.medians
  const ratio = (k) => `${(md[k].ours / md[k].pytorch).toFixed(2)}x`
  rows.push(`| **${r.data}** | | | | |`,
    `| training throughput (labelled pairs/s) | ${f0(md.trainPairsPerSecond.ours)} | ${f0(md.trainPairsPerSecond.core)} | ${f0(md.trainPairsPerSecond.pytorch)} | ${ratio('trainPairsPerSecond')} |`,
    `| evaluation throughput (test pairs/s) | ${f0(md.evalPairsPerSecond.ours)} | ${f0(md.evalPairsPerSecond.core)} | ${f0(md.evalPairsPerSecond.pytorch)} | ${ratio('evalPairsPerSecond')} |`,
    `| test pair accuracy after 1 epoch (${r.testPairs} pairs; min..max) | ${pct(md.testAccuracy.ours)} (${r.accuracyRange.ours.map(pct).join('..')}) | ${pct(md.testAccuracy.core)} | ${pct(md.testAccuracy.pytorch)} (${r.accuracyRange.pytorch.map(pct).join('..')}) | |`,
    `| peak resident memory (MiB) | ${f0(md.maxRssMiB.ours)} | ${f0(md.maxRssMiB.core)} | ${f0(md.maxRssMiB.pytorch)} | ${ratio('maxRssMiB')} |`,
    `| single-pair predict, median / p99 (ms) | ${f2(md.predictMedianMs.ours)} / ${f2(md.predictP99Ms.ours)} | ${md.predictMedianMs.core === undefined ? '' : `${f2(md.predictMedianMs.core)} / ${f2(md.predictP99Ms.core)}`} | | |`,
    `| batch-1024 predict (pairs/s) | ${f0(md.batch1024PairsPerSecond.ours)} | ${f0(md.batch1024PairsPerSecond.core)} | | |`,
    `| largest event-loop delay during training (ms, 5 ms resolution) | ${md.eventLoopMaxDelayMs.ours.toFixed(1)} | | | |`,
    `| the first call, which loads the addon and LibTorch: blocks for (ms) | ${f0(md.loadMs.stalls)} | | | |`,
    `| largest event-loop stall from train() to its first batch (ms, 1 ms resolution) | ${f2(md.trainStartStallMs.stalls)} | | | |`,
    `| largest event-loop stall over an epoch (ms, 1 ms resolution) | ${f2(md.trainStallMs.stalls)} | | | |`)
}
const overhead = 100 * (1 - main.trainPairsPerSecond.ours / main.trainPairsPerSecond.core)
rows.push('', `Addon overhead on training (embedded digits): ${overhead.toFixed(1)}% slower than the C++ binary ` +
  '(negative: faster; within run-to-run noise when small).',
`Training on the embedded digits: ${result.flops.achievedGflops.toFixed(1)} GFLOP/s, ` +
  `${(100 * result.flops.achievedGflops / peakGflops).toFixed(1)}% of ${peakWords}. Whole benchmark: ${result.minutes.toFixed(1)} minutes.`)
const table = rows.join('\n')
// A second run on the same day gets its own files: committed results are never overwritten.
writeResult('bench', result.date, result, `# Benchmark, ${result.date}\n\n${result.machine}. ${result.method}.\n` +
  `Versions: siamese-torch ${result.versions.siameseTorch}, LibTorch ${result.versions.libtorch}, PyTorch ${result.versions.pytorch}.\n\n${table}\n`)
console.log(table)
