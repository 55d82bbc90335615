// What the CPU benchmarks (run.mjs, towers.mjs, peak.mjs ...) and the GPU one (../gpu/bench.mjs) share.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { basename, dirname, join, relative } from 'node:path'
import { performance } from 'node:perf_hooks'
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

/** The CPU's flags, from /proc/cpuinfo. */
export const cpuFlags = () => new Set((/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/))

/** Whether this CPU computes in bf16 natively (avx512_bf16 or AMX), the condition for the bf16 runs. */
export const cpuHasBf16 = () => cpuFlags().has('avx512_bf16') || cpuFlags().has('amx_bf16')

/**
 * The BLAS and malloc this process really runs with, read from /proc/self/maps (as
 * scripts/bench/torch_env.py does for PyTorch's): siamese-torch's LibTorch loads whatever
 * libblas.so.3 the dynamic linker finds, normally the system's alternative.
 */
export function loadedLibraries () {
  const maps = readFileSync('/proc/self/maps', 'utf8')
  const all = [...new Set(maps.split('\n').map((l) => l.trim().split(/\s+/)[5]).filter((p) => p?.includes('.so')))]
  const blas = all.filter((p) => /blas|lapack|mkl_|blis/.test(basename(p)))
  const first = (text, kinds, otherwise) => kinds.find(([pattern]) => pattern.test(text))?.[1] ?? otherwise
  const blasName = first(blas.join(' '), [[/openblas/, 'OpenBLAS'], [/mkl_/, 'MKL'], [/blis/, 'BLIS'],
    [/\/blas\/libblas/, 'reference BLAS (netlib)']], blas.length ? 'unknown' : 'none mapped')
  const allocator = first(all.map((p) => basename(p)).join(' '), [[/jemalloc/, 'jemalloc'], [/tcmalloc/, 'tcmalloc']], 'glibc malloc')
  return { blas: { name: blasName, libraries: blas }, allocator: { name: allocator, env: mallocEnv(process.env) } }
}

const MALLOC_VARIABLES = ['MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_',
  'MALLOC_MMAP_MAX_', 'GLIBC_TUNABLES', 'MALLOC_CONF', 'LD_PRELOAD']
const mallocEnv = (env) => Object.fromEntries(MALLOC_VARIABLES.filter((k) => env[k] !== undefined).map((k) => [k, env[k]]))

const JEMALLOC = process.env.SIAMESE_TORCH_BENCH_JEMALLOC ?? '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2'
const OPENBLAS_DIR = process.env.SIAMESE_TORCH_BENCH_OPENBLAS_DIR ?? '/usr/lib/x86_64-linux-gnu/openblas-pthread'

/**
 * The mallocs tried for PyTorch (scripts/bench/tuning.mjs measures them): the environment each
 * adds. glibc's "tuned" keeps every buffer up to 32 MiB (its largest mmap threshold; the largest
 * activation here is 24 MB) in the heap and never trims it, so steady-state steps reuse memory
 * instead of mapping and faulting it afresh. jemalloc "guide settings" is the MALLOC_CONF that
 * PyTorch's CPU performance guides give; "no purging" keeps large allocations in the ordinary
 * arenas and never gives pages back, jemalloc's counterpart of glibc's tuning.
 */
export const PYTORCH_MALLOCS = {
  glibc: {},
  'glibc tuned': { MALLOC_MMAP_THRESHOLD_: '33554432', MALLOC_TRIM_THRESHOLD_: '17179869184' },
  'glibc tuned, 1 arena': { MALLOC_MMAP_THRESHOLD_: '33554432', MALLOC_TRIM_THRESHOLD_: '17179869184', MALLOC_ARENA_MAX: '1' },
  jemalloc: { LD_PRELOAD: JEMALLOC },
  'jemalloc, guide settings': {
    LD_PRELOAD: JEMALLOC,
    MALLOC_CONF: 'oversize_threshold:1,background_thread:true,metadata_thp:auto,dirty_decay_ms:9000000000,muzzy_decay_ms:9000000000'
  },
  'jemalloc, no purging': { LD_PRELOAD: JEMALLOC, MALLOC_CONF: 'oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:-1' }
}
/**
 * The malloc chosen for PyTorch here, fp32 and bf16, from scripts/bench/tuning.mjs's run
 * (docs/performance.md says which run and why): glibc tuned had the fewest page faults and the
 * best median training rates in both; jemalloc without purging came close, but needs a preload.
 */
export const PYTORCH_BEST_MALLOC = 'glibc tuned'
/** ATen's CPU kernel level for PyTorch at its best (ATEN_CPU_CAPABILITY), where the CPU has AVX-512; undefined: torch's own choice. */
export const PYTORCH_BEST_ATEN = undefined

/**
 * PyTorch at its best on this machine, without changing the system: OpenBLAS instead of the
 * system's reference BLAS (the system alternative stays where our bit-identity checks need it;
 * LD_LIBRARY_PATH puts OpenBLAS's libblas.so.3 and liblapack.so.3 first for that process only),
 * OpenBLAS's threads set to the tool's thread count, and the malloc that measured best
 * (`malloc`: a key of PYTORCH_MALLOCS). Returns the child's environment, what it asks for, and
 * notes on what could not be had; what was really loaded, each run reads back itself
 * (/proc/self/maps). SIAMESE_TORCH_BENCH_OPENBLAS_DIR and SIAMESE_TORCH_BENCH_JEMALLOC override
 * the two paths.
 */
export function pytorchBestEnv (threads, { malloc = PYTORCH_BEST_MALLOC, openblas = true, aten = PYTORCH_BEST_ATEN } = {}) {
  const env = { ...process.env }
  const notes = []
  if (openblas && existsSync(join(OPENBLAS_DIR, 'libblas.so.3'))) {
    env.LD_LIBRARY_PATH = [OPENBLAS_DIR, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':')
    env.OPENBLAS_NUM_THREADS = String(threads)
  } else if (openblas) {
    notes.push(`no OpenBLAS in ${OPENBLAS_DIR} (apt-get install libopenblas0-pthread): PyTorch ran on the system's BLAS`)
  }
  // ATen's kernel level: Debian's torch picks AVX2 on its own even where the CPU has AVX-512.
  if (aten && cpuFlags().has('avx512bw') && cpuFlags().has('avx512vl')) env.ATEN_CPU_CAPABILITY = aten
  const settings = PYTORCH_MALLOCS[malloc]
  if (settings.LD_PRELOAD && !existsSync(settings.LD_PRELOAD)) {
    notes.push(`no ${settings.LD_PRELOAD} (apt-get install libjemalloc2): PyTorch ran on glibc's malloc`)
  } else {
    Object.assign(env, settings)
    if (settings.LD_PRELOAD && process.env.LD_PRELOAD) env.LD_PRELOAD = `${settings.LD_PRELOAD}:${process.env.LD_PRELOAD}`
  }
  const asked = { malloc, ...Object.fromEntries(['LD_LIBRARY_PATH', 'OPENBLAS_NUM_THREADS', 'ATEN_CPU_CAPABILITY'].filter((k) => env[k] !== undefined).map((k) => [k, env[k]])), ...mallocEnv(env) }
  return { env, asked, notes }
}

/** What a PyTorch run reads back of its libraries (torch_env.py's runtime_report): BLAS and malloc by name, ATen's kernel level. */
export const pytorchLibraries = (r) => ({ blas: r.blas?.name, allocator: r.allocator?.name, cpuCapability: r.cpuCapability })

/**
 * Takes `--precision fp32|bf16` out of a script's arguments (in place). `options` is what to
 * spread into train() and evaluate(): nothing for fp32, so that those runs stay what they were.
 */
export function precisionOption (args) {
  const i = args.indexOf('--precision')
  const precision = i >= 0 ? args.splice(i, 2)[1] : 'fp32'
  if (!['fp32', 'bf16'].includes(precision)) throw new Error(`--precision takes fp32 or bf16, not ${precision}`)
  return { precision, options: precision === 'fp32' ? {} : { precision } }
}

/**
 * Runs the tools interleaved, `reps` times (A B C A B C ...), each an entry of `tools`:
 * { run: (rep) => result, reps?: fewer repetitions, skip?: a reason not to run it at all,
 * optional?: true when a failure or a { skipped } result only drops that tool }. Returns
 * { runs: { tool: [results] }, skipped: { tool: reason } }; `log(tool, result, rep)` after each run.
 */
export function interleave (tools, reps, log) {
  const runs = {}
  const skipped = {}
  for (const [name, t] of Object.entries(tools)) {
    if (t.skip) skipped[name] = t.skip
    else runs[name] = []
  }
  for (let r = 0; r < reps; r++) {
    for (const name of Object.keys(runs)) {
      const t = tools[name]
      if (skipped[name] || r >= (t.reps ?? reps)) continue
      let result
      try {
        result = t.run(r)
      } catch (err) {
        if (!t.optional) throw err
        result = { skipped: `failed: ${(err.stderr?.toString().trim().split('\n').at(-1)) || err.message}` }
      }
      if (result.skipped !== undefined) {
        skipped[name] = result.skipped
        console.error(`${name} skipped: ${result.skipped}`)
        continue
      }
      runs[name].push(result)
      log(name, result, r)
    }
  }
  for (const name of Object.keys(skipped)) if (runs[name]?.length === 0) delete runs[name]
  return { runs, skipped }
}

/**
 * Trains by `train()` (which spreads precisionOption's `options` into its call); when a precision
 * other than fp32 was asked for and training refuses (a library without the option, a CPU it
 * refuses), prints the { skipped } line the drivers look for and returns undefined.
 */
export async function trainIn (precision, train) {
  try {
    return await train()
  } catch (err) {
    if (precision === 'fp32') throw err
    console.log(JSON.stringify({ tool: 'siamese-torch', precision, skipped: `train() refused precision '${precision}': ${err.code ?? ''} ${err.message}` }))
    return undefined
  }
}

/**
 * model.evaluate(test, ...) timed on the fixed test pairs alone, in `precision`: passed as an
 * option when it is not fp32; when evaluate() takes no such option, the model's own (a model keeps
 * the precision it trained in). No episodes (`ways: 0`), and neither the all-pairs verification nor
 * the retrieval metrics (on by default since "classes never trained"): they score every pair of
 * test images, work that grows with the square of the set and that PyTorch's scripts do not do, and
 * they made siamese-torch's "evaluation throughput" look 2 to 6x slower than it is.
 * Returns { metrics, seconds, evalPrecision }.
 */
export async function evaluateIn (model, test, precision) {
  const pairsOnly = { ways: 0, allPairs: false, retrieval: false }
  let options = precision === 'fp32' ? pairsOnly : { ...pairsOnly, precision }
  let started = performance.now()
  let metrics
  try {
    metrics = await model.evaluate(test, options)
  } catch (err) {
    if (options.precision === undefined || !/unknown option "precision"/.test(err.message)) throw err
    options = pairsOnly
    started = performance.now()
    metrics = await model.evaluate(test, options)
  }
  const seconds = (performance.now() - started) / 1000
  return { metrics, seconds, evalPrecision: options.precision ?? model.precision ?? (precision === 'fp32' ? 'fp32' : 'the model\'s own') }
}
