// What the CPU benchmarks (run.mjs, peak.mjs ...) and the GPU one (../gpu/bench.mjs) share.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const resultsDir = join(here, 'results')

// Forward FLOPs of one tower pass over one 28x28 image (multiply-adds x 2): conv1, conv2, conv3,
// linear1. A labelled training pair costs the forward of 1.5 images (a triplet is two pairs over
// three images) and a backward of about twice the forward; a predicted pair two forwards.
export const towerFlops = 2 * (22 * 22 * 64 * 49 + 7 * 7 * 128 * 64 * 25 + 3 * 3 * 256 * 128 * 25 + 2304 * 512)
export const trainFlopsPerPair = 3 * 1.5 * towerFlops
export const predictFlopsPerPair = 2 * towerFlops

/** The last line of a tool's output, as JSON (each tool prints its result last). */
export const lastJson = (out) => JSON.parse(out.trim().split('\n').at(-1))

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/**
 * Builds CMake targets of native/bench (core_bench, peak_bench) like the addon (same finder, flags
 * and objects), into build/core-bench, or into SIAMESE_TORCH_BENCH_BUILD when set; returns that folder.
 */
export function buildBench (...targets) {
  const dir = process.env.SIAMESE_TORCH_BENCH_BUILD ?? join(root, 'build', 'core-bench')
  const cmake = (args) => execFileSync('cmake', args, { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })
  console.error(`building ${targets.join(', ')} in ${dir} ...`)
  cmake(['-S', root, '-B', dir, '-DSIAMESE_TORCH_CORE_BENCH=ON', '-DCMAKE_BUILD_TYPE=Release'])
  cmake(['--build', dir, '--parallel', '2', '--target', ...targets])
  return dir
}

/**
 * Writes scripts/bench/results/<date>-<kind>.json and .md; a second run on the same day gets
 * <date>-2-<kind>, and so on: committed results are never overwritten. Returns the files' path
 * relative to the repository, without the extension.
 */
export function writeResult (kind, date, result, markdown) {
  mkdirSync(resultsDir, { recursive: true })
  let name = `${date}-${kind}`
  for (let n = 2; existsSync(join(resultsDir, `${name}.json`)); n++) name = `${date}-${n}-${kind}`
  writeFileSync(join(resultsDir, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`)
  writeFileSync(join(resultsDir, `${name}.md`), markdown)
  return relative(root, join(resultsDir, name))
}

/** This machine as the results name it: its CPU model and how many CPUs it has. */
export const thisMachine = () => ({ cpuModel: cpus()[0]?.model ?? 'unknown CPU', cpus: cpus().length })

/**
 * The fp32 peak of this machine at `threads` threads, from the newest peak.mjs measurement of it
 * (results/*-peak.json with the same CPU model and CPU count), or undefined when there is none.
 * More threads than were measured (than the CPUs the measurement could use) add nothing: the peak
 * of the most threads measured, up to `threads`, is used.
 */
export function measuredPeak (threads, dir = resultsDir) {
  const machine = thisMachine()
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('-peak.json')) : []
  const mine = files.map((f) => ({ file: join(dir, f), ...JSON.parse(readFileSync(join(dir, f), 'utf8')) }))
    .filter((m) => m.cpuModel === machine.cpuModel && m.cpus === machine.cpus && m.peak)
    .sort((a, b) => String(a.measuredAt).localeCompare(String(b.measuredAt)))
  const newest = mine.at(-1)
  if (!newest) return undefined
  const counts = Object.keys(newest.peak).map(Number).filter((t) => t <= threads)
  if (counts.length === 0) return undefined
  const at = Math.max(...counts)
  return { gflops: newest.peak[at].fp32, threads: at, file: relative(root, newest.file), measuredAt: newest.measuredAt }
}
