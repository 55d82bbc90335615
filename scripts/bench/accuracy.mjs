#!/usr/bin/env node
// Accuracy per epoch of training settings on the embedded digits, over several seeds: the test
// accuracy (the 3,992 fixed test pairs) after every epoch of runs of each configuration, one run a
// seed, each run a fresh process. How docs/performance.md's "Accuracy per minute" was measured:
// accuracy does not depend on the machine's load, so it can run on a busy machine; time is not
// measured here (an epoch's time on a quiet machine converts epochs to minutes).
// Writes scripts/bench/results/<date>[-N]-accuracy.json and .md and prints the table.
// Usage: node scripts/bench/accuracy.mjs [--groups defaults,baseline,...] [--seeds 5] [--jobs 1]
//          [--threads N] [--log FILE]
//   --groups   which configurations (the names in CONFIGS' group); default: all
//   --seeds    seeds 0 to n-1 for each configuration (a configuration may ask for fewer)
//   --jobs     runs at once (each its own process)
//   --threads  LibTorch threads a run (default: the library's default)
//   --log      a JSON-lines file of finished runs: runs already in it are not run again
//        node scripts/bench/accuracy.mjs --child JSON   (one run; prints its JSON)
import { execFile } from 'node:child_process'
import { appendFileSync, existsSync, readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { defaults, train, version } from '../../dist/index.mjs'
import { lastJson, median, thisMachine, writeResult } from './common.mjs'

/** One run: `train` on the embedded digits with `options`; the test accuracy after each epoch. */
async function child (options) {
  const started = performance.now()
  const { model, history } = await train({ data: 'embedded', saveEvery: 0, ...options })
  const wall = (performance.now() - started) / 1000
  model.dispose()
  console.log(JSON.stringify({ accuracy: history.map((h) => h.testAccuracy), seconds: history.map((h) => h.seconds), wall }))
}

if (process.argv[2] === '--child') {
  await child(JSON.parse(process.argv[3]))
  process.exit(0)
}

// Each configuration: its group, a name, the epochs of a run, and the options on top of the
// defaults. The old defaults had a constant learning rate of 0.001 (`lrSchedule: 'constant'`).
const old = { lrSchedule: 'constant', lr: 0.001, warmup: 0, batchSize: 64, weightDecay: 0.0001 }
const cosine = (lr, more = {}) => ({ ...old, lrSchedule: 'cosine', lr, ...more })
const CONFIGS = [
  { group: 'defaults', name: 'defaults, 2 epochs', epochs: 2, options: {} },
  { group: 'defaults-3', name: 'defaults, 3 epochs', epochs: 3, options: {} },
  { group: 'baseline', name: 'old defaults (constant 1e-3), 2 epochs', epochs: 2, options: old },
  { group: 'curve', name: 'old defaults (constant 1e-3), 15 epochs', epochs: 15, seeds: 2, options: old },
  { group: 'schedule', name: 'cosine 1e-3, 2 epochs', epochs: 2, options: cosine(1e-3) },
  { group: 'batch', name: 'cosine 1e-3, batch 32, 2 epochs', epochs: 2, options: cosine(1e-3, { batchSize: 32 }) },
  { group: 'decay', name: 'cosine 1e-3, no weight decay, 2 epochs', epochs: 2, options: cosine(1e-3, { weightDecay: 0 }) },
  { group: 'schedule', name: 'cosine 2e-3, 2 epochs', epochs: 2, options: cosine(2e-3) },
  { group: 'warmup', name: 'cosine 2e-3, warm-up 0.25 epochs, 2 epochs', epochs: 2, options: cosine(2e-3, { warmup: 0.25 }) },
  { group: 'warmup', name: 'cosine 3e-3, warm-up 0.25 epochs, 2 epochs', epochs: 2, options: cosine(3e-3, { warmup: 0.25 }) },
  { group: 'warmup', name: 'cosine 2e-3, warm-up 0.25, batch 32, 2 epochs', epochs: 2, options: cosine(2e-3, { warmup: 0.25, batchSize: 32 }) },
  { group: 'warmup', name: 'cosine 1e-3, warm-up 0.25 epochs, 2 epochs', epochs: 2, options: cosine(1e-3, { warmup: 0.25 }) },
  { group: 'warmup', name: 'cosine 1e-3, warm-up 0.25, batch 32, 2 epochs', epochs: 2, options: cosine(1e-3, { warmup: 0.25, batchSize: 32 }) },
  { group: 'warmup', name: 'cosine 2e-3, warm-up 0.25, batch 128, 2 epochs', epochs: 2, options: cosine(2e-3, { warmup: 0.25, batchSize: 128 }) },
  { group: 'warmup', name: 'cosine 2e-3, warm-up 0.5 epochs, 2 epochs', epochs: 2, options: cosine(2e-3, { warmup: 0.5 }) },
  { group: 'batch', name: 'constant 1e-3, batch 32, 2 epochs', epochs: 2, options: { ...old, batchSize: 32 } },
  { group: 'warmup', name: 'cosine 3e-3, warm-up 0.5 epochs, 2 epochs', epochs: 2, options: cosine(3e-3, { warmup: 0.5 }) },
  { group: 'warmup', name: 'cosine 3e-3, warm-up 0.25, batch 32, 2 epochs', epochs: 2, options: cosine(3e-3, { warmup: 0.25, batchSize: 32 }) },
  { group: 'warmup', name: 'cosine 1e-3, warm-up 0.25, batch 16, 2 epochs', epochs: 2, options: cosine(1e-3, { warmup: 0.25, batchSize: 16 }) },
  { group: 'long', name: 'cosine 3e-3, warm-up 0.25, batch 32, 10 epochs', epochs: 10, seeds: 2, options: cosine(3e-3, { warmup: 0.25, batchSize: 32 }) },
  { group: 'defaults-long', name: 'defaults, 10 epochs', epochs: 10, seeds: 3, options: {} }
]

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}
const groups = arg('groups', undefined)?.split(',')
const seeds = Number(arg('seeds', 5))
const jobs = Number(arg('jobs', 1))
const threads = arg('threads', undefined) === undefined ? undefined : Number(arg('threads'))
const log = arg('log', undefined)

const configs = CONFIGS.filter((c) => groups === undefined || groups.includes(c.group))
const key = (options) => JSON.stringify(options)
const done = new Map()
if (log !== undefined && existsSync(log)) {
  for (const line of readFileSync(log, 'utf8').split('\n').filter(Boolean)) {
    const r = JSON.parse(line)
    done.set(key(r.options), r)
  }
}

// Every run, then a pool of `jobs` processes over them.
const runs = configs.flatMap((c) => Array.from({ length: Math.min(seeds, c.seeds ?? seeds) }, (_, seed) => ({
  config: c,
  options: { ...c.options, epochs: c.epochs, seed, ...(threads === undefined ? {} : { threads }) }
})))
const script = fileURLToPath(import.meta.url)
const runOne = (options) => new Promise((resolve, reject) => {
  execFile(process.execPath, [script, '--child', JSON.stringify(options)], { encoding: 'utf8', maxBuffer: 1 << 24 }, (err, stdout) => {
    if (err) reject(err)
    else resolve(lastJson(stdout))
  })
})
let next = 0
await Promise.all(Array.from({ length: jobs }, async () => {
  while (next < runs.length) {
    const run = runs[next++]
    if (!done.has(key(run.options))) {
      const r = { options: run.options, ...(await runOne(run.options)) }
      done.set(key(run.options), r)
      if (log !== undefined) appendFileSync(log, `${JSON.stringify(r)}\n`)
    }
    const r = done.get(key(run.options))
    console.error(`${run.config.name}, seed ${run.options.seed}: ${r.accuracy.map((a) => (100 * a).toFixed(2)).join(' ')}`)
  }
}))

const pct = (x) => (100 * x).toFixed(2)
const results = configs.map((c) => {
  const own = runs.filter((r) => r.config === c).map((r) => ({ seed: r.options.seed, ...done.get(key(r.options)) }))
  const final = own.map((r) => r.accuracy.at(-1))
  const walls = own.map((r) => r.wall).filter((w) => typeof w === 'number')
  return {
    name: c.name,
    group: c.group,
    epochs: c.epochs,
    options: c.options,
    runs: own.map(({ seed, accuracy, seconds, wall }) => ({ seed, accuracy, seconds, wall })),
    final: { min: Math.min(...final), median: median(final), max: Math.max(...final) },
    // The first epoch at which each seed's run reached 97% (null: never), and the seconds of
    // training (the epochs' own times, their evaluations included) it took to get there.
    firstAt97: own.map((r) => { const i = r.accuracy.findIndex((a) => a >= 0.97); return i < 0 ? null : i + 1 }),
    secondsTo97: own.map((r) => {
      const i = r.accuracy.findIndex((a) => a >= 0.97)
      return i < 0 ? null : r.seconds.slice(0, i + 1).reduce((sum, s) => sum + s, 0)
    }),
    // The whole run, from train() to its model: data, set-up, every epoch (null: logged by an
    // earlier version of this script, which did not keep it).
    wall: walls.length === 0 ? null : { min: Math.min(...walls), max: Math.max(...walls) }
  }
})

const result = {
  date: new Date().toISOString().slice(0, 10),
  machine: thisMachine(),
  versions: { siameseTorch: version().siameseTorch, libtorch: version().libtorch },
  threads: threads ?? `default (${version().threads})`,
  defaults: defaults.training,
  method: 'train() on the embedded digits, pair-ce, the reference tower; test accuracy on the 3,992 fixed test pairs after each epoch; ' +
    'one fresh process a run; seeds 0 to n-1',
  results,
  // The runs' own minutes (their epochs), whether run now or read back from --log.
  minutes: results.flatMap((r) => r.runs).reduce((sum, r) => sum + r.seconds.reduce((a, b) => a + b, 0), 0) / 60
}
const rows = ['| configuration | seeds | accuracy after the last epoch, by seed (%) | min / median / max (%) | first epoch at 97%, by seed | seconds of training to 97%, by seed | whole run (s) |',
  '| --- | --- | --- | --- | --- | --- | --- |']
for (const r of results) {
  rows.push(`| ${r.name} | ${r.runs.length} | ${r.runs.map((x) => pct(x.accuracy.at(-1))).join(', ')} | ` +
    `${pct(r.final.min)} / ${pct(r.final.median)} / ${pct(r.final.max)} | ${r.firstAt97.map((e) => e ?? '-').join(', ')} | ` +
    `${r.secondsTo97.map((s) => (s === null ? '-' : s.toFixed(0))).join(', ')} | ${r.wall === null ? '-' : `${r.wall.min.toFixed(0)} to ${r.wall.max.toFixed(0)}`} |`)
}
const curves = results.filter((r) => r.epochs > 2)
const curveRows = curves.flatMap((r) => r.runs.map((x) => `| ${r.name}, seed ${x.seed} | ${x.accuracy.map(pct).join(' | ')} |`))
const table = rows.join('\n') + (curveRows.length === 0
  ? ''
  : `\n\nTest accuracy (%) after each epoch:\n\n| run | ${Array.from({ length: Math.max(...curves.map((r) => r.epochs)) }, (_, i) => i + 1).join(' | ')} |\n` +
    `| --- |${' --- |'.repeat(Math.max(...curves.map((r) => r.epochs)))}\n${curveRows.join('\n')}`)
const path = writeResult('accuracy', result.date, result, `# Accuracy per epoch, ${result.date}\n\n` +
  `${result.machine.cpuModel}, ${result.machine.cpus} CPUs, threads ${result.threads}. ${result.method}. ` +
  `siamese-torch ${result.versions.siameseTorch}, LibTorch ${result.versions.libtorch}. ${result.minutes.toFixed(0)} minutes of training in all.\n\n${table}\n`)
console.log(table)
console.error(`written: ${path}.json, .md`)
