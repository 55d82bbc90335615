#!/usr/bin/env node
// npm run bench: siamese-torch against PyTorch (Python) on the reference recipe, side by side,
// on the same data, thread count and fixed test pairs, in interleaved runs (A B A B ...).
// Writes scripts/bench/results/<date>-bench.json and .md and prints the table.
// Usage: node scripts/bench/run.mjs [--reps 3] [--threads 2]
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { datasets, version } from '../../dist/index.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const reps = arg('reps', 3)
const threads = arg('threads', 2)
const python = process.env.SIAMESE_TORCH_BENCH_PYTHON ?? '/usr/bin/python3'

// The same fixed test pairs for both tools.
const { test } = await datasets.embedded()
const p = datasets.testPairs(test)
const pairsFile = join(tmpdir(), `siamese-bench-pairs-${process.pid}.json`)
writeFileSync(pairsFile, JSON.stringify({ left: [...p.left], right: [...p.right], same: [...p.same] }))
const embeddedDir = join(root, 'dist', 'data', 'mnist-embedded')

function ours (seed) {
  const out = execFileSync(process.execPath, [join(here, 'ours.mjs'), String(threads), String(seed)], { encoding: 'utf8' })
  return JSON.parse(out.trim().split('\n').at(-1))
}

function pytorch (seed) {
  const out = execFileSync(python, [join(here, 'reference.py'), '--data', embeddedDir, '--pairs', pairsFile,
    '--epochs', '1', '--threads', String(threads), '--seed', String(seed)], { encoding: 'utf8' })
  const summary = JSON.parse(out.trim().split('\n').at(-1))
  const h = summary.history[0]
  return { tool: 'pytorch', torch: summary.torch, trainPairsPerSecond: h.pairsPerSecond, testAccuracy: h.testAccuracy,
    evalPairsPerSecond: h.evalPairsPerSecond, maxRssMiB: summary.maxRssMiB }
}

const runs = { ours: [], pytorch: [] }
for (let r = 0; r < reps; r++) {
  runs.ours.push(ours(r))
  console.error(`rep ${r + 1}/${reps}: siamese-torch ${runs.ours.at(-1).trainPairsPerSecond.toFixed(0)} pairs/s`)
  runs.pytorch.push(pytorch(r))
  console.error(`rep ${r + 1}/${reps}: PyTorch ${runs.pytorch.at(-1).trainPairsPerSecond.toFixed(0)} pairs/s`)
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const m = (tool, key) => median(runs[tool].map((x) => x[key]))

// FLOPs of one labelled training pair: forward of 1.5 tower images (a triplet is two pairs over
// three images), backward about twice the forward. Tower forward per image, multiply-adds x 2:
const towerFlops = 2 * (22 * 22 * 64 * 49 + 7 * 7 * 128 * 64 * 25 + 3 * 3 * 256 * 128 * 25 + 2304 * 512)
const flopsPerPair = 3 * 1.5 * towerFlops
const cpuInfo = readFileSync('/proc/cpuinfo', 'utf8')
const mhz = Number(/cpu MHz\s*:\s*([\d.]+)/.exec(cpuInfo)?.[1] ?? 0)
const flopsPerCycle = /\bavx512f\b/.test(cpuInfo) ? 64 : /\bavx2\b/.test(cpuInfo) && /\bfma\b/.test(cpuInfo) ? 32 : 8
const peakGflops = (mhz / 1000) * flopsPerCycle * threads

const result = {
  date: new Date().toISOString().slice(0, 10),
  machine: `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} vCPUs, ${threads} threads per tool`,
  versions: { siameseTorch: version().siameseTorch, libtorch: version().libtorch, pytorch: runs.pytorch[0]?.torch },
  method: `reference recipe (RECIPE.md), 1 epoch of 5,000 triplets on the embedded digits, interleaved A B x ${reps}, medians; ` +
    'the same 3,992 fixed test pairs for both; each run a fresh process',
  siameseTorch: runs.ours,
  pytorch: runs.pytorch,
  medians: {
    trainPairsPerSecond: { ours: m('ours', 'trainPairsPerSecond'), pytorch: m('pytorch', 'trainPairsPerSecond') },
    evalPairsPerSecond: { ours: m('ours', 'evalPairsPerSecond'), pytorch: m('pytorch', 'evalPairsPerSecond') },
    testAccuracy: { ours: m('ours', 'testAccuracy'), pytorch: m('pytorch', 'testAccuracy') },
    maxRssMiB: { ours: m('ours', 'maxRssMiB'), pytorch: m('pytorch', 'maxRssMiB') },
    predictMedianMs: m('ours', 'predictMedianMs'),
    predictP99Ms: m('ours', 'predictP99Ms'),
    batch1024PairsPerSecond: m('ours', 'batch1024PairsPerSecond'),
    eventLoopMaxDelayMs: m('ours', 'eventLoopMaxDelayMs')
  },
  flops: { perTrainingPair: flopsPerPair, achievedGflops: (m('ours', 'trainPairsPerSecond') * flopsPerPair) / 1e9, peakGflops,
    peakAssumes: `${mhz} MHz x ${flopsPerCycle} fp32 FLOP/cycle x ${threads} cores` }
}
const md = result.medians
const ratio = (k) => (md[k].ours / md[k].pytorch).toFixed(2)
const table = [
  `| figure (${threads} threads, medians of ${reps}) | siamese-torch | PyTorch | ratio |`,
  '| --- | --- | --- | --- |',
  `| training throughput (labelled pairs/s) | ${md.trainPairsPerSecond.ours.toFixed(0)} | ${md.trainPairsPerSecond.pytorch.toFixed(0)} | ${ratio('trainPairsPerSecond')}x |`,
  `| evaluation throughput (test pairs/s) | ${md.evalPairsPerSecond.ours.toFixed(0)} | ${md.evalPairsPerSecond.pytorch.toFixed(0)} | ${ratio('evalPairsPerSecond')}x |`,
  `| test pair accuracy after 1 epoch | ${(100 * md.testAccuracy.ours).toFixed(2)}% | ${(100 * md.testAccuracy.pytorch).toFixed(2)}% | |`,
  `| peak resident memory (MiB) | ${md.maxRssMiB.ours.toFixed(0)} | ${md.maxRssMiB.pytorch.toFixed(0)} | ${ratio('maxRssMiB')}x |`,
  `| single-pair predict, median / p99 (ms) | ${md.predictMedianMs.toFixed(2)} / ${md.predictP99Ms.toFixed(2)} | | |`,
  `| batch-1024 predict (pairs/s) | ${md.batch1024PairsPerSecond.toFixed(0)} | | |`,
  `| largest event-loop delay during training (ms) | ${md.eventLoopMaxDelayMs.toFixed(1)} | | |`,
  `| training GFLOP/s (share of ${result.flops.peakGflops.toFixed(0)} peak) | ${result.flops.achievedGflops.toFixed(1)} (${(100 * result.flops.achievedGflops / result.flops.peakGflops).toFixed(1)}%) | | |`
].join('\n')
const dir = join(here, 'results')
mkdirSync(dir, { recursive: true })
writeFileSync(join(dir, `${result.date}-bench.json`), `${JSON.stringify(result, null, 2)}\n`)
writeFileSync(join(dir, `${result.date}-bench.md`), `# Benchmark, ${result.date}\n\n${result.machine}. ${result.method}.\n\n${table}\n`)
console.log(table)
