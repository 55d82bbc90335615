#!/usr/bin/env node
// Which BLAS, malloc and ATen kernel level make PyTorch fastest on this machine: the measurement
// behind PYTORCH_BEST_MALLOC and PYTORCH_BEST_ATEN in common.mjs, which run.mjs and towers.mjs
// use for "PyTorch at its best". Runs scripts/bench/reference.py --batched --memory-format auto
// for --batches steps of the recipe on the embedded digits, then its evaluation, in fp32 and
// (where the CPU has bf16) bf16 autocast, under each setting in turn, interleaved, each run a
// fresh process; each run reports what it really loaded (/proc/self/maps).
// Writes scripts/bench/results/<date>[-N]-tuning.json and .md and prints the table.
// Usage: node scripts/bench/tuning.mjs [--reps 3] [--threads 2] [--batches 40]
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { datasets } from '../../dist/index.mjs'
import { cpuHasBf16, interleave, lastJson, median, PYTORCH_BEST_ATEN, PYTORCH_BEST_MALLOC, PYTORCH_MALLOCS, pytorchBestEnv, pytorchLibraries, writeResult } from './common.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const reps = arg('reps', 3)
const threads = arg('threads', 2)
const batches = arg('batches', 40)
const python = process.env.SIAMESE_TORCH_BENCH_PYTHON ?? '/usr/bin/python3'
const started = Date.now()

const dataDir = join(here, '..', '..', 'dist', 'data', 'mnist-embedded')
const p = datasets.testPairs((await datasets.embedded()).test)
const pairsFile = join(tmpdir(), `siamese-bench-tuning-pairs-${process.pid}.json`)
writeFileSync(pairsFile, JSON.stringify({ left: [...p.left], right: [...p.right], same: [...p.same] }))

// The settings: the system's BLAS with glibc's malloc (what the faithful run gets), then OpenBLAS
// with each malloc, then OpenBLAS with the chosen malloc and ATen's AVX-512 kernels.
const settings = { 'reference BLAS, glibc': pytorchBestEnv(threads, { openblas: false, malloc: 'glibc', aten: null }) }
for (const malloc of Object.keys(PYTORCH_MALLOCS)) settings[`OpenBLAS, ${malloc}`] = pytorchBestEnv(threads, { malloc, aten: null })
settings[`OpenBLAS, ${PYTORCH_BEST_MALLOC}, ATen AVX512`] = pytorchBestEnv(threads, { aten: 'avx512' })
const precisions = cpuHasBf16() ? ['fp32', 'bf16'] : ['fp32']

const run = (setting, precision) => {
  const s = lastJson(execFileSync(python, [join(here, 'reference.py'), '--data', dataDir, '--pairs', pairsFile, '--epochs', '1',
    '--threads', String(threads), '--max-batches', String(batches), '--batched', '--memory-format', 'auto', '--precision', precision],
  { encoding: 'utf8', env: settings[setting].env }))
  const h = s.history[0]
  return {
    trainPairsPerSecond: h.pairsPerSecond,
    evalPairsPerSecond: h.evalPairsPerSecond,
    maxRssMiB: s.maxRssMiB,
    memoryFormat: s.memoryFormat,
    cpuSeconds: s.rusage.userSeconds + s.rusage.systemSeconds,
    systemSeconds: s.rusage.systemSeconds,
    minorFaults: s.rusage.minorFaults,
    ...pytorchLibraries(s)
  }
}
const tools = {}
for (const precision of precisions) {
  for (const setting of Object.keys(settings)) tools[`${setting} | ${precision}`] = { run: () => run(setting, precision) }
}
const { runs } = interleave(tools, reps, (tool, x, r) => console.error(`rep ${r + 1}/${reps}: ${tool}: ${x.trainPairsPerSecond.toFixed(0)} pairs/s`))

// Medians, and the best run's training rate: on a busy machine the fastest of a few runs is the
// nearest to an undisturbed one. System seconds and minor page faults (whole process, the probe
// included) show what a malloc changes and are little disturbed by other work.
const m = (tool, key) => median(runs[tool].map((x) => x[key]))
const best = (tool) => Math.max(...runs[tool].map((x) => x.trainPairsPerSecond))
const figures = [['training pairs/s, median (best)', (t) => `${m(t, 'trainPairsPerSecond').toFixed(0)} (${best(t).toFixed(0)})`],
  ['evaluation pairs/s', (t) => m(t, 'evalPairsPerSecond').toFixed(0)], ['peak MiB', (t) => m(t, 'maxRssMiB').toFixed(0)],
  ['CPU s (system s)', (t) => `${m(t, 'cpuSeconds').toFixed(1)} (${m(t, 'systemSeconds').toFixed(1)})`], ['minor faults (thousands)', (t) => (m(t, 'minorFaults') / 1000).toFixed(0)]]
const rows = [`| setting (${threads} threads, ${reps} runs) | ${precisions.flatMap((q) => figures.map(([f]) => `${q}: ${f}`)).join(' | ')} | loaded (read back) |`,
  `| --- |${' --- |'.repeat(figures.length * precisions.length + 1)}`]
for (const setting of Object.keys(settings)) {
  const cells = precisions.flatMap((q) => figures.map(([, f]) => f(`${setting} | ${q}`)))
  const [x] = runs[`${setting} | fp32`]
  rows.push(`| ${setting} | ${cells.join(' | ')} | ${x.blas}, ${x.allocator}, ATen ${x.cpuCapability} |`)
}
const result = {
  date: new Date().toISOString().slice(0, 10),
  machine: `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} vCPUs, ${threads} threads`,
  method: `reference.py --batched --memory-format auto on the embedded digits: ${batches} training steps of 64 triplets, then the ` +
    `${p.left.length} fixed test pairs; each setting and precision interleaved x ${reps}, medians; each run a fresh process`,
  settings: Object.fromEntries(Object.entries(settings).map(([k, v]) => [k, { asked: v.asked, notes: v.notes }])),
  chosen: { malloc: PYTORCH_BEST_MALLOC, aten: PYTORCH_BEST_ATEN ?? null },
  runs,
  minutes: (Date.now() - started) / 60000
}
const table = `${rows.join('\n')}\n\nChosen in common.mjs: ${PYTORCH_BEST_MALLOC}, ATen ${PYTORCH_BEST_ATEN ?? "torch's own choice"}. ` +
  `Whole run: ${result.minutes.toFixed(1)} minutes.`
writeResult('tuning', result.date, result, `# PyTorch tuning, ${result.date}\n\n${result.machine}. ${result.method}.\n\n${table}\n`)
console.log(table)
