#!/usr/bin/env node
// How cost grows (issue 15, item 4): curves of siamese-torch and of PyTorch (scripts/bench/growth.py,
// at its best as the other benchmarks run it: OpenBLAS and the tuned malloc of common.mjs's
// pytorchBestEnv, one batched forward a step, the memory format probed) side by side, on the same
// data, batch construction and thread count; each point a fresh process of each, ours then PyTorch's.
//   pairs    training against the number of training pairs: the embedded digits (8,004 training
//            and 1,996 test images) tiled 1x to 60x, each copy after the first shifted by up to 2
//            pixels and given a little noise (still ten classes); the reference tower at 28x28,
//            batch 64, the balanced scheme (two pairs an image an epoch: the 'reference' scheme
//            draws 5,000 triplets whatever the set's size, so it cannot grow).
//   size     training against the image side, 28, 64, 105 and 224 (square, grey): the first 1,280
//            training and 320 test digits scaled up (nearest pixel), the conv4 tower (embedding
//            512), batch 32, the balanced scheme. conv4 because it is the tower that runs all
//            four sizes: the reference tower's linear1 grows with the image and is refused past
//            MAX_REFERENCE_PARAMETERS (lib/contract.ts) from 62x62 on; resnet18 would run them too,
//            at about three times conv4's work at 224, more than this benchmark's budget.
//   batch    training against the batch size, 16 to 1024 triplets: the reference recipe (reference
//            tower, 'reference' pairs: 5,000 triplets) on the embedded digits.
//   predict  the latency of one model.predict call against the pairs it carries, 1 to 1024 (the
//            reference tower at 28x28; PyTorch: one forward of the 2N images, the head, softmax).
// Whole epochs at 60x would take about 20 minutes each. A run's cost is measured in its parts
// instead: the set-up before the first step (the data handed over and copied, the model built, the
// pairs drawn), the steady-state step over a fixed number of steps after a warm-up, the epoch's
// time before the steady state (its pairs, the warm-up's extra), the evaluation of the fixed test
// pairs, and the peak resident memory (VmHWM); the whole first epoch where it is cheap (the first
// point of pairs and size), which checks the projection set-up + steps + evaluation against the
// real thing. Each quantity is fitted by a line a + b*x on the curve's smallest points (x: the
// tiles, the pixels of an image, the batch, the pairs of a call) and every point is given as
// measured / that line: the table says where each curve leaves its line.
// siamese-torch's steps are timed from its batch events (BatchEvent.pairsPerSecond gives each
// event's seconds since the epoch began, on the trainer's clock); a run that has its steps is
// stopped with an AbortSignal, the model kept for the evaluation.
// Writes scripts/bench/results/<date>[-N]-growth.json and .md and prints the tables. Not part of
// npm run bench. About 6 minutes in all on this 2-vCPU machine when nothing else runs (estimated
// from the steps' times: pairs 2, size 2, batch 1.5, predict 0.5), more when other work shares
// it; --curve runs one curve (or a comma-separated few), --quick fewer points and steps (about 3).
// Usage: node scripts/bench/growth.mjs [--curve pairs|size|batch|predict[,...]] [--quick] [--threads 2]
//          [--reps 1] [--points 1,2,5] [--warmup N] [--steps N] [--calls N] [--eval-max 10]
//          [--full-epochs 1] [--fit-points 3] [--tolerance 0.15] [--memory-format auto|contiguous|channels_last]
//   --points: the x of the curve(s) asked for; --warmup, --steps: untimed and timed steps of every
//   training point (--steps also fixes the batch curve's, which otherwise times about 2,048
//   triplets a point); --calls: timed predict calls a point; --eval-max: the largest tile count
//   whose evaluation is measured (beyond it, the line through the measured ones projects it);
//   --full-epochs: how many of the first points of pairs and size train a whole epoch.
//        node scripts/bench/growth.mjs --child train|predict SPEC   (one siamese-torch run; prints JSON)
import { execFileSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { createModel, datasets, version } from '../../dist/index.mjs'
import { MAX_REFERENCE_PARAMETERS } from '../../dist/contract.js'
import { random } from '../../test/helpers/random.mjs'
import { interleave, lastJson, loadedLibraries, median, pytorchBestEnv, pytorchLibraries, writeResult } from './common.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const EMBEDDING = 512
const SIZE_TRAIN = 1280
const SIZE_TEST = 320

const seconds = (since) => (performance.now() - since) / 1000
/** The peak resident memory of this process's own address space (VmHWM), in MiB. */
const peakRssMiB = () => Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024

/** The first `bytes` bytes of a file. */
function readBytes (file, bytes) {
  const out = new Uint8Array(bytes)
  const fd = openSync(file, 'r')
  try {
    for (let got = 0; got < bytes;) {
      const n = readSync(fd, out, got, bytes - got, got)
      if (n === 0) throw new Error(`${file}: ${got} bytes, ${bytes} wanted`)
      got += n
    }
  } finally {
    closeSync(fd)
  }
  return out
}

/** The first `part.count` images (size x size, grey) and labels of a pair of files. */
const readPart = (part, size) => ({
  images: readBytes(part.pixels, part.count * size * size),
  labels: new Int32Array(readBytes(part.labels, 4 * part.count).buffer)
})

// ---- one siamese-torch run (--child) ----

/**
 * One training point: the data handed over (fromArrays copies it), a model built, one epoch's
 * steps (all of them with spec.fullEpoch, else warm-up and timed steps, then an abort), the
 * evaluation of the fixed test pairs when asked.
 */
async function trainChild (spec) {
  const { size, batch, threads, warmup, steps } = spec
  // LibTorch loaded first, as PyTorch's import is: the set-up below is the run's, not the process's.
  version()
  let started = performance.now()
  let train = readPart(spec.train, size)
  let test = readPart(spec.test, size)
  const loadSeconds = seconds(started)
  started = performance.now()
  const data = {
    train: datasets.fromArrays({ ...train, width: size, height: size }),
    test: datasets.fromArrays({ ...test, width: size, height: size })
  }
  train = test = undefined // the sets hold their own copies: the files' bytes can go
  const arraysSeconds = seconds(started)
  started = performance.now()
  const model = await createModel({ tower: spec.tower, width: size, height: size, channels: 1, embeddingSize: EMBEDDING, threads, seed: 0 })
  const createSeconds = seconds(started)

  // Batch events come at most every 100 ms, and after the epoch's last batch; each tells the
  // pairs done and the pairs per second since the epoch began, so its seconds since then. The
  // last batch may be short (fewer pairs than a full one): it never times a step.
  const events = []
  let epochAt
  const controller = new AbortController()
  const steady = (e) => e.batch < e.batches
  const timedFrom = () => events.find((e) => steady(e) && e.batch >= warmup)
  const onProgress = (e) => {
    const at = performance.now()
    if (e.type === 'epoch') epochAt = at
    if (e.type !== 'batch') return
    events.push({ at, batch: e.batch, batches: e.batches, elapsed: (2 * e.batch * batch) / e.pairsPerSecond })
    const from = timedFrom()
    if (!spec.fullEpoch && from && steady(events.at(-1)) && e.batch - from.batch >= steps) controller.abort()
  }
  const called = performance.now()
  let history = []
  try {
    ({ history } = await model.train({
      data, pairs: spec.scheme, epochs: 1, batchSize: batch, threads, seed: 0, saveEvery: 0, onProgress, signal: controller.signal
    }))
  } catch (err) {
    if (err.code !== 'ABORT_ERR') throw err
  }
  const from = timedFrom()
  const usable = events.filter(steady)
  const to = spec.fullEpoch ? usable.at(-1) : usable.find((e) => from && e.batch - from.batch >= steps)
  const stepSeconds = from && to && to.batch > from.batch ? (to.elapsed - from.elapsed) / (to.batch - from.batch) : undefined
  const first = usable[0]
  const result = {
    tool: 'siamese-torch',
    mode: 'train',
    tower: spec.tower,
    size,
    scheme: spec.scheme,
    batch,
    trainCount: spec.train.count,
    testCount: spec.test.count,
    threads,
    loadSeconds,
    arraysSeconds,
    createSeconds,
    // From train() to the epoch's start: options and data checked, the pixels copied into tensors,
    // the reference pairs drawn, the optimiser made.
    trainStartSeconds: first ? (first.at - called) / 1000 - first.elapsed : undefined,
    batches: events[0]?.batches,
    stepSeconds,
    timedSteps: to && from ? to.batch - from.batch : 0,
    startSeconds: stepSeconds === undefined ? undefined : from.elapsed - from.batch * stepSeconds,
    aborted: controller.signal.aborted
  }
  result.setupSeconds = first ? arraysSeconds + createSeconds + result.trainStartSeconds : undefined
  if (spec.fullEpoch && history[0]) {
    result.epochSeconds = history[0].seconds
    result.evalInEpochSeconds = (epochAt - events.at(-1).at) / 1000
  }
  if (spec.evaluate || spec.fullEpoch) {
    // Warm, as PyTorch's: one batch embedded first (the compute thread, oneDNN's primitives).
    const pixels = size * size
    const warm = Array.from({ length: Math.min(64, data.test.count) }, (_, i) => data.test.images.subarray(i * pixels, (i + 1) * pixels))
    await model.embed(warm)
    started = performance.now()
    // The fixed test pairs only, as each epoch evaluates them (every pair of the set and the
    // retrieval figures grow with its square).
    const metrics = await model.evaluate(data.test, { ways: 0, allPairs: false, retrieval: false })
    result.evalSeconds = seconds(started)
    result.evalPairs = metrics.pairs
  }
  result.peakRssMiB = peakRssMiB()
  // One epoch's pairs drawn alone (the trainer draws the balanced scheme's at each epoch's start).
  started = performance.now()
  result.triplets = datasets.triplets(data.train, { scheme: spec.scheme, seed: 0, epoch: 0 }).anchor.length
  result.pairGenSeconds = seconds(started)
  const { blas, allocator } = loadedLibraries()
  console.log(JSON.stringify({ ...result, blas, allocator }))
  model.dispose()
}

/** One predict point: spec.calls calls of spec.pairs pairs each (28x28 test digits), after spec.warmup calls. */
async function predictChild (spec) {
  const { count } = spec.test
  const pixels = readPart(spec.test, 28).images
  version()
  const model = await createModel({ threads: spec.threads, seed: 0 })
  const image = (i) => pixels.subarray((i % count) * 784, (i % count + 1) * 784)
  const n = spec.pairs
  // The pairs' images, as a caller holds them: bare 28x28 pixels, left and right.
  const left = Array.from({ length: n }, (_, i) => image(i))
  const right = Array.from({ length: n }, (_, i) => image(i + Math.floor(count / 2)))
  for (let i = 0; i < spec.warmup; i++) await model.predict(left, right)
  const latencies = []
  for (let i = 0; i < spec.calls; i++) {
    const t0 = performance.now()
    const p = await model.predict(left, right)
    latencies.push((performance.now() - t0) / 1000)
    if (p.length !== n) throw new Error(`${p.length} probabilities for ${n} pairs`)
  }
  const { blas, allocator } = loadedLibraries()
  console.log(JSON.stringify({
    tool: 'siamese-torch',
    mode: 'predict',
    threads: spec.threads,
    pairsPerCall: n,
    calls: spec.calls,
    latencySeconds: median(latencies),
    meanLatencySeconds: latencies.reduce((a, b) => a + b, 0) / latencies.length,
    peakRssMiB: peakRssMiB(),
    blas,
    allocator
  }))
  model.dispose()
}

if (process.argv[2] === '--child') {
  const spec = JSON.parse(process.argv[4])
  await (process.argv[3] === 'predict' ? predictChild(spec) : trainChild(spec))
  process.exit(0)
}

// ---- the driver ----

const argv = process.argv.slice(2)
const option = (name, fallback) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1] : fallback
}
const arg = (name, fallback) => {
  const value = option(name)
  return value === undefined ? fallback : Number(value)
}
const quick = argv.includes('--quick')
const threads = arg('threads', 2)
const reps = arg('reps', 1)
const fitPoints = arg('fit-points', quick ? 2 : 3)
const tolerance = arg('tolerance', 0.15)
const evalMax = arg('eval-max', quick ? 2 : 10)
const fullEpochs = arg('full-epochs', quick ? 0 : 1)
const memoryFormat = option('memory-format', 'auto')
const python = process.env.SIAMESE_TORCH_BENCH_PYTHON ?? '/usr/bin/python3'
const started = Date.now()

/**
 * The curves: their points (default and --quick), what x is and what the line is fitted on, and
 * the steps. Point counts and steps keep the whole default run near 15 minutes on 2 vCPUs.
 */
const CURVES = {
  pairs: {
    title: '(a) Training time against the number of training pairs',
    points: [1, 2, 5, 10, 20, 40, 60],
    quick: [1, 2, 20, 60],
    x: 'tiles of the embedded digits',
    fitX: (x) => x,
    warmup: quick ? 2 : 3,
    steps: quick ? 8 : 20
  },
  size: {
    title: '(b) Training time against the image size',
    points: [28, 64, 105, 224],
    quick: [28, 64, 224],
    x: 'image side (pixels; the line is fitted on its square, the pixels of an image)',
    fitX: (x) => x * x,
    warmup: quick ? 1 : 2,
    steps: quick ? 3 : 6
  },
  batch: {
    title: '(c) Training step against the batch size',
    points: [16, 32, 64, 128, 256, 512, 1024],
    quick: [16, 64, 256, 1024],
    x: 'batch (triplets a step, two labelled pairs each)',
    fitX: (x) => x,
    warmup: quick ? 1 : 2,
    // About this many triplets timed a point, at least 3 steps (2 with --quick).
    triplets: quick ? 512 : 2048
  },
  predict: {
    title: '(d) Predict latency against the pairs a call carries',
    points: [1, 4, 16, 64, 256, 1024],
    quick: [1, 16, 128, 1024],
    x: 'pairs a predict call',
    fitX: (x) => x,
    warmup: 2,
    // About this many pairs timed a point, 5 to 100 calls (3 to 30 with --quick).
    pairs: quick ? 512 : 2048
  }
}

const curves = option('curve', Object.keys(CURVES).join(',')).split(',')
for (const c of curves) if (!CURVES[c]) throw new Error(`--curve takes ${Object.keys(CURVES).join(', ')}, not ${c}`)
const pointsOf = (name) => (option('points') ? option('points').split(',').map(Number) : quick ? CURVES[name].quick : CURVES[name].points)
if (!['auto', 'contiguous', 'channels_last'].includes(memoryFormat)) {
  throw new Error(`--memory-format takes auto, contiguous or channels_last, not ${memoryFormat}`)
}

/**
 * Writes `tiles` copies of a split, one after the other: the first as it is, each other one with
 * every image shifted by up to 2 pixels each way (zeros coming in) and uniform noise of up to 12
 * grey levels added; the labels repeated. One copy in memory at a time: this process holds no
 * large buffer when it starts the children (a fork would carry it into their accounting).
 */
function writeTiled (dir, name, split, tiles) {
  const files = { pixels: join(dir, `${name}-pixels.bin`), labels: join(dir, `${name}-labels.bin`) }
  const source = split.images
  const pixels = openSync(files.pixels, 'w')
  const labels = openSync(files.labels, 'w')
  const tile = new Uint8Array(source.length)
  try {
    for (let k = 0; k < tiles; k++) {
      if (k === 0) {
        tile.set(source)
      } else {
        const draw = random(1000 + k)
        for (let i = 0; i < split.count; i++) {
          const dx = Math.floor(draw() * 5) - 2
          const dy = Math.floor(draw() * 5) - 2
          const base = i * 784
          let noise = 0
          for (let p = 0; p < 784; p++) {
            // Four noise bytes a draw.
            if ((p & 3) === 0) noise = Math.floor(draw() * 4294967296)
            const y = (p / 28 | 0) - dy
            const x = (p % 28) - dx
            const value = y >= 0 && y < 28 && x >= 0 && x < 28 ? source[base + y * 28 + x] : 0
            const n = ((noise >>> ((p & 3) * 8)) & 0xff) % 25 - 12
            tile[base + p] = Math.min(255, Math.max(0, value + n))
          }
        }
      }
      writeSync(pixels, tile)
      writeSync(labels, new Uint8Array(split.labels.buffer, split.labels.byteOffset, 4 * split.count))
    }
  } finally {
    closeSync(pixels)
    closeSync(labels)
  }
  return { ...files, count: split.count }
}

/** The first `count` images of a split scaled up to size x size (nearest pixel), with their labels. */
function writeScaled (dir, name, split, count, size) {
  const files = { pixels: join(dir, `${name}-${size}-pixels.bin`), labels: join(dir, `${name}-${size}-labels.bin`), count }
  const from = Int32Array.from({ length: size * size }, (_, p) => Math.floor((p / size | 0) * 28 / size) * 28 + Math.floor((p % size) * 28 / size))
  const out = new Uint8Array(count * size * size)
  for (let i = 0; i < count; i++) {
    for (let p = 0; p < from.length; p++) out[i * from.length + p] = split.images[i * 784 + from[p]]
  }
  const pixels = openSync(files.pixels, 'w')
  writeSync(pixels, out)
  closeSync(pixels)
  const labels = openSync(files.labels, 'w')
  writeSync(labels, new Uint8Array(split.labels.buffer, split.labels.byteOffset, 4 * count))
  closeSync(labels)
  return files
}

/** The reference tower's parameters at size x size (docs/api.md, Towers): its convolutions, then linear1. */
const referenceParameters = (size) => {
  const side = Math.floor((size - 6) / 2) - 8
  return 64 * 49 + 64 + 128 * 64 * 25 + 128 + 256 * 128 * 25 + 256 + 256 * side * side * EMBEDDING + EMBEDDING
}

/** Least squares line a + b*x through the points; undefined with fewer than two distinct x. */
function lineThrough (xs, ys) {
  const n = xs.length
  const mx = xs.reduce((s, x) => s + x, 0) / n
  const my = ys.reduce((s, y) => s + y, 0) / n
  const sxx = xs.reduce((s, x) => s + (x - mx) ** 2, 0)
  if (n < 2 || sxx === 0) return undefined
  const b = xs.reduce((s, x, i) => s + (x - mx) * (ys[i] - my), 0) / sxx
  return { a: my - b * mx, b }
}

/**
 * The line through a tool's first `fitPoints` measured points, each point as measured / line
 * (undefined where the line is not above zero), and the first point past the fitted ones that is
 * off the line by more than `tolerance`.
 */
function linearity (xs, ys) {
  const measured = ys.map((y, i) => i).filter((i) => ys[i] !== undefined && Number.isFinite(ys[i]))
  const fitted = measured.slice(0, fitPoints)
  const line = lineThrough(fitted.map((i) => xs[i]), fitted.map((i) => ys[i]))
  if (!line) return undefined
  const ratios = ys.map((y, i) => {
    const expected = line.a + line.b * xs[i]
    return y === undefined || expected <= 0 ? undefined : y / expected
  })
  const leaves = measured.find((i) => i >= fitted.at(-1) + 1 && ratios[i] !== undefined && Math.abs(ratios[i] - 1) > tolerance)
  return { ...line, fittedOn: fitted, ratios, leavesAt: leaves }
}

const fmt = (v) => {
  if (v === undefined || v === null || !Number.isFinite(v)) return ''
  const a = Math.abs(v)
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toPrecision(2)
}
const times = (v) => (v === undefined || !Number.isFinite(v) ? '' : `${v.toFixed(2)}`)

/** The median of each numeric figure over a tool's runs at one point (the other fields: the first run's). */
function medians (runs) {
  if (!runs?.length) return undefined
  const out = { ...runs[0] }
  for (const [key, value] of Object.entries(runs[0])) {
    const values = runs.map((r) => r[key]).filter((v) => typeof v === 'number')
    if (typeof value === 'number') out[key] = values.length ? median(values) : undefined
  }
  return out
}

const scratch = mkdtempSync(join(tmpdir(), 'siamese-bench-growth-'))
try {
  const best = pytorchBestEnv(threads)
  const embedded = await datasets.embedded()
  const { train, test } = embedded
  // The data each curve reads: the digits tiled as often as the pairs curve asks (once for the
  // batch and predict curves), and the size curve's scaled copies.
  const tiles = Math.max(1, ...(curves.includes('pairs') ? pointsOf('pairs') : [1]))
  console.error(`writing the data (${tiles} tile${tiles > 1 ? 's' : ''}) in ${scratch} ...`)
  const tiled = { train: writeTiled(scratch, 'train', train, tiles), test: writeTiled(scratch, 'test', test, tiles) }
  const part = (files, count) => ({ pixels: files.pixels, labels: files.labels, count })

  const ours = (spec) => lastJson(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', spec.mode, JSON.stringify(spec)],
    { encoding: 'utf8', maxBuffer: 16 << 20 }))
  const pytorch = (spec) => {
    const common = ['--mode', spec.mode, '--tower', spec.tower ?? 'reference', '--size', String(spec.size ?? 28), '--threads', String(threads),
      '--test-pixels', spec.test.pixels, '--test-labels', spec.test.labels, '--test-count', String(spec.test.count),
      '--warmup', String(spec.warmup), '--memory-format', memoryFormat]
    const own = spec.mode === 'train'
      ? ['--train-pixels', spec.train.pixels, '--train-labels', spec.train.labels, '--train-count', String(spec.train.count),
          '--scheme', spec.scheme, '--batch', String(spec.batch), '--steps', String(spec.steps), '--embedding', String(EMBEDDING),
          ...(spec.fullEpoch ? ['--full-epoch'] : []), ...(spec.evaluate ? ['--evaluate'] : [])]
      : ['--pairs-per-call', String(spec.pairs), '--calls', String(spec.calls)]
    const r = lastJson(execFileSync(python, [join(here, 'growth.py'), ...common, ...own], { encoding: 'utf8', env: best.env, maxBuffer: 16 << 20 }))
    return { ...r, ...pytorchLibraries(r) }
  }

  /** The spec of each point of a curve (what both tools are asked to do). */
  const specs = {
    pairs: (x, i) => ({
      mode: 'train',
      tower: 'reference',
      size: 28,
      scheme: 'balanced',
      batch: 64,
      train: part(tiled.train, train.count * x),
      test: part(tiled.test, test.count * x),
      warmup: arg('warmup', CURVES.pairs.warmup),
      steps: arg('steps', CURVES.pairs.steps),
      evaluate: x <= evalMax,
      fullEpoch: i < fullEpochs
    }),
    size: (size, i) => {
      const files = { train: writeScaled(scratch, 'train', train, SIZE_TRAIN, size), test: writeScaled(scratch, 'test', test, SIZE_TEST, size) }
      return {
        mode: 'train',
        tower: 'conv4',
        size,
        scheme: 'balanced',
        batch: 32,
        train: files.train,
        test: files.test,
        warmup: arg('warmup', CURVES.size.warmup),
        steps: arg('steps', CURVES.size.steps),
        evaluate: true,
        fullEpoch: i < fullEpochs
      }
    },
    batch: (batch) => {
      // The reference scheme's 5,000 triplets make few full batches at the largest sizes: the
      // warm-up gives way (to one step) before the timed steps do, and the short last batch is never timed.
      const full = Math.floor(5000 / batch)
      let steps = arg('steps', Math.max(quick ? 2 : 3, Math.ceil(CURVES.batch.triplets / batch)))
      const warmup = Math.max(1, Math.min(arg('warmup', CURVES.batch.warmup), full - steps))
      steps = Math.min(steps, full - warmup)
      return {
        mode: 'train',
        tower: 'reference',
        size: 28,
        scheme: 'reference',
        batch,
        train: part(tiled.train, train.count),
        test: part(tiled.test, test.count),
        warmup,
        steps,
        evaluate: false,
        fullEpoch: false
      }
    },
    predict: (pairs) => ({
      mode: 'predict',
      pairs,
      test: part(tiled.test, test.count),
      warmup: arg('warmup', CURVES.predict.warmup),
      calls: arg('calls', Math.min(quick ? 30 : 100, Math.max(quick ? 3 : 5, Math.ceil(CURVES.predict.pairs / pairs))))
    })
  }

  const results = {}
  for (const name of curves) {
    const curve = CURVES[name]
    const points = []
    for (const [i, x] of pointsOf(name).entries()) {
      const spec = { ...specs[name](x, i), threads }
      const { runs, skipped } = interleave({ ours: { run: () => ours(spec) }, pytorch: { run: () => pytorch(spec) } }, reps, (tool, r, rep) =>
        console.error(`${name} ${x}, rep ${rep + 1}/${reps}: ${tool} ` + (spec.mode === 'train'
          ? `step ${fmt(1000 * r.stepSeconds)} ms, set-up ${fmt(r.setupSeconds)} s, evaluation ${fmt(r.evalSeconds)} s, peak ${fmt(r.peakRssMiB)} MiB`
          : `${fmt(1000 * r.latencySeconds)} ms a call, peak ${fmt(r.peakRssMiB)} MiB`)))
      const { train: trainPart, test: testPart, ...asked } = spec
      points.push({
        x,
        fitX: curve.fitX(x),
        spec: { ...asked, trainCount: trainPart?.count, testCount: testPart?.count },
        ours: medians(runs.ours),
        pytorch: medians(runs.pytorch),
        runs,
        skipped
      })
    }
    results[name] = { title: curve.title, x: curve.x, points }
  }

  // ---- the quantities of each curve, their lines, and the tables ----

  const perSecond = (pairsOf) => (f, p) => (f?.stepSeconds === undefined ? undefined : pairsOf(p) / f.stepSeconds)
  const quantities = {
    pairs: [
      { key: 'epoch', label: 'one epoch, projected: set-up + epoch start + batches x step + evaluation (s)', fit: true },
      { key: 'setup', label: 'set-up before the first step (s)', fit: true, get: (f) => f?.setupSeconds },
      { key: 'pairGen', label: "one epoch's pairs drawn (s)", fit: true, get: (f) => f?.pairGenSeconds },
      { key: 'step', label: 'steady-state step, batch 64 (ms)', fit: true, get: (f) => (f?.stepSeconds === undefined ? undefined : 1000 * f.stepSeconds) },
      { key: 'eval', label: 'evaluation of the fixed test pairs (s)', fit: true, get: (f) => f?.evalSeconds },
      { key: 'peak', label: 'peak resident memory (MiB)', fit: true, get: (f) => f?.peakRssMiB }
    ],
    size: [
      { key: 'step', label: 'steady-state step, batch 32 (ms)', fit: true, get: (f) => (f?.stepSeconds === undefined ? undefined : 1000 * f.stepSeconds) },
      { key: 'rate', label: 'training throughput (labelled pairs/s)', fit: false, get: perSecond((p) => 2 * p.spec.batch) },
      { key: 'setup', label: 'set-up before the first step (s)', fit: true, get: (f) => f?.setupSeconds },
      { key: 'eval', label: `evaluation of the fixed test pairs (${SIZE_TEST} images, ${2 * SIZE_TEST} pairs) (s)`, fit: true, get: (f) => f?.evalSeconds },
      { key: 'peak', label: 'peak resident memory (MiB)', fit: true, get: (f) => f?.peakRssMiB }
    ],
    batch: [
      { key: 'step', label: 'steady-state step (ms)', fit: true, get: (f) => (f?.stepSeconds === undefined ? undefined : 1000 * f.stepSeconds) },
      { key: 'rate', label: 'training throughput (labelled pairs/s)', fit: false, get: perSecond((p) => 2 * p.x) },
      { key: 'peak', label: 'peak resident memory (MiB)', fit: true, get: (f) => f?.peakRssMiB }
    ],
    predict: [
      { key: 'latency', label: 'one call, median (ms)', fit: true, get: (f) => (f?.latencySeconds === undefined ? undefined : 1000 * f.latencySeconds) },
      { key: 'rate', label: 'pairs/s', fit: false, get: (f, p) => (f?.latencySeconds === undefined ? undefined : p.x / f.latencySeconds) },
      { key: 'peak', label: 'peak resident memory (MiB)', fit: true, get: (f) => f?.peakRssMiB }
    ]
  }
  // The projected epoch of the pairs curve: its evaluation, where not measured (past --eval-max),
  // from the line through all the measured ones (evaluation embeds each test image once and
  // scores two pairs an image: linear in the images, as the measured points show or not).
  const notes = []
  if (results.pairs) {
    const pts = results.pairs.points
    for (const tool of ['ours', 'pytorch']) {
      const measured = pts.filter((p) => p[tool]?.evalSeconds !== undefined)
      const line = lineThrough(measured.map((p) => p.x), measured.map((p) => p[tool].evalSeconds))
      for (const p of pts) {
        const f = p[tool]
        if (f?.stepSeconds === undefined) continue
        const evaluation = f.evalSeconds ?? (line ? line.a + line.b * p.x : undefined)
        f.evalProjected = f.evalSeconds === undefined
        f.epochProjectedSeconds = evaluation === undefined ? undefined : f.setupSeconds + f.startSeconds + f.batches * f.stepSeconds + evaluation
      }
    }
    quantities.pairs[0].get = (f) => f?.epochProjectedSeconds
    if (pts.some((p) => p.ours?.evalProjected || p.pytorch?.evalProjected)) {
      notes.push(`(a): evaluation measured up to ${evalMax}x (--eval-max); past it, the projected epoch takes it from the line through the measured ones (marked *).`)
    }
  }

  const tables = []
  for (const [name, r] of Object.entries(results)) {
    const xs = r.points.map((p) => p.fitX)
    r.quantities = []
    const rows = [`## ${r.title}`, '', `x: ${r.x}. ${describe(name, r)}`, '']
    for (const q of quantities[name]) {
      const values = Object.fromEntries(['ours', 'pytorch'].map((tool) => [tool, r.points.map((p) => q.get(p[tool], p))]))
      const lines = q.fit ? Object.fromEntries(['ours', 'pytorch'].map((tool) => [tool, linearity(xs, values[tool])])) : {}
      r.quantities.push({ key: q.key, label: q.label, values, lines })
      const star = (tool, i) => (q.key === 'epoch' && r.points[i][tool]?.evalProjected ? '*' : '')
      rows.push(`**${q.label}**`, '', q.fit
        ? '| x | siamese-torch | PyTorch | siamese-torch / PyTorch | siamese-torch: measured / line | PyTorch: measured / line |\n| --- | --- | --- | --- | --- | --- |'
        : '| x | siamese-torch | PyTorch | siamese-torch / PyTorch |\n| --- | --- | --- | --- |')
      r.points.forEach((p, i) => {
        const [o, t] = [values.ours[i], values.pytorch[i]]
        const cells = [label(name, p), `${fmt(o)}${star('ours', i)}`, `${fmt(t)}${star('pytorch', i)}`, o !== undefined && t ? `${times(o / t)}x` : '']
        if (q.fit) cells.push(times(lines.ours?.ratios[i]), times(lines.pytorch?.ratios[i]))
        rows.push(`| ${cells.join(' | ')} |`)
      })
      if (q.fit) rows.push('', ['ours', 'pytorch'].map((tool) => verdict(name, r, tool, lines[tool])).join(' '))
      rows.push('')
    }
    if (name === 'pairs' || name === 'size') rows.push(...epochCheck(name, r))
    tables.push(rows.join('\n'))
  }

  const first = (tool) => Object.values(results).flatMap((r) => r.points.map((p) => p[tool])).find(Boolean)
  const torchRun = first('pytorch')
  const result = {
    date: new Date().toISOString().slice(0, 10),
    machine: `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} vCPUs, ${threads} threads per tool`,
    versions: { siameseTorch: version().siameseTorch, libtorch: version().libtorch, pytorch: torchRun?.torch },
    method: 'each point a fresh process of each tool, siamese-torch then PyTorch' + (reps > 1 ? `, x ${reps} interleaved, medians` : '') +
      '; PyTorch at its best (scripts/bench/growth.py: OpenBLAS, glibc malloc tuned, one batched forward a step, the memory format ' +
      `${memoryFormat === 'auto' ? 'probed at each point (its cost left out)' : memoryFormat}); lines fitted on the first ${fitPoints} points of each curve, ` +
      `"leaves its line" at more than ${Math.round(100 * tolerance)}% off it`,
    options: { curves, quick, threads, reps, fitPoints, tolerance, evalMax, fullEpochs, memoryFormat },
    pytorchBest: { asked: best.asked, notes: best.notes },
    curves: results,
    minutes: (Date.now() - started) / 60000
  }
  if (torchRun) notes.push(`PyTorch ran on ${torchRun.blas} with ${torchRun.allocator} (read from its /proc/self/maps), ATen ${torchRun.cpuCapability}.`)
  notes.push(...best.notes)
  const md = `# Growth benchmark, ${result.date}\n\n${result.machine}. ${result.method}.\n` +
    `Versions: siamese-torch ${result.versions.siameseTorch}, LibTorch ${result.versions.libtorch}, PyTorch ${result.versions.pytorch}. ` +
    `Whole run: ${result.minutes.toFixed(1)} minutes.\n\n${tables.join('\n')}\n${notes.map((n) => `- ${n}`).join('\n')}\n`
  const written = writeResult('growth', result.date, result, md)
  console.log(md)
  console.error(`written: ${written}.json and .md`)
} finally {
  rmSync(scratch, { recursive: true, force: true })
}

/** A point's x as the tables show it. */
function label (name, p) {
  if (name === 'pairs') return `${p.x}x (${p.spec.trainCount.toLocaleString('en')} images, ${(2 * p.spec.trainCount).toLocaleString('en')} pairs an epoch)`
  if (name === 'size') return `${p.x}x${p.x}`
  return String(p.x)
}

/** What a curve's points did, for the line under its title. */
function describe (name, r) {
  const [p] = r.points
  const s = p.spec
  const steps = `${s.warmup} untimed and ${s.steps} timed steps a point`
  if (name === 'pairs') {
    return `The reference tower at 28x28, batch ${s.batch}, the balanced scheme, ${steps}; the test split tiled alike ` +
      `(${r.points.map((q) => q.spec.testCount).join(', ')} images). Evaluation measured up to ${evalMax}x; ` +
      `${fullEpochs ? `the first ${fullEpochs} point(s) trained a whole epoch` : 'no whole epoch trained'}.`
  }
  if (name === 'size') {
    const ref = r.points.map((q) => `${q.x}: ${(referenceParameters(q.x) / 1e6).toFixed(1)} M`).join(', ')
    return `conv4 (embedding ${EMBEDDING}), grey, batch ${s.batch}, the balanced scheme over ${SIZE_TRAIN} training images, ${steps}. ` +
      `The reference tower would have ${ref} parameters at these sides; past ${MAX_REFERENCE_PARAMETERS / 1e6} M ` +
      '(MAX_REFERENCE_PARAMETERS, lib/contract.ts), from 62x62 on, the library refuses it, so conv4 is the tower that runs them all; ' +
      `its fc grows as 64 x (side / 16)^2 x ${EMBEDDING}. ${fullEpochs ? `The first ${fullEpochs} point(s) trained a whole epoch.` : ''}`
  }
  if (name === 'batch') {
    return "The reference recipe: reference tower at 28x28, the 'reference' scheme's 5,000 triplets; timed steps " +
      `${r.points.map((q) => `${q.x}: ${q.spec.warmup} + ${q.spec.steps}`).join(', ')} (untimed + timed).`
  }
  return `The reference tower at 28x28, untrained; ${p.spec.warmup} untimed calls, then ` +
    `${r.points.map((q) => `${q.x}: ${q.spec.calls}`).join(', ')} timed calls (pairs: calls).`
}

/** Under a table: where a tool's line was fitted, and where the curve leaves it. */
function verdict (name, r, tool, line) {
  const who = tool === 'ours' ? 'siamese-torch' : 'PyTorch'
  if (!line) return `${who}: too few points for a line.`
  const xs = line.fittedOn.map((i) => label(name, r.points[i]).split(' ')[0])
  const head = `${who}: line a + b*x through ${xs.join(', ')} (a = ${fmt(line.a)}, b = ${fmt(line.b)} per ${name === 'size' ? 'pixel' : 'x'});`
  const lastMeasured = line.ratios.findLastIndex((v) => v !== undefined)
  if (line.leavesAt === undefined) {
    return `${head} within ${Math.round(100 * tolerance)}% of it up to ${label(name, r.points[lastMeasured]).split(' ')[0]}.`
  }
  const before = line.leavesAt - 1
  return `${head} leaves it at ${label(name, r.points[line.leavesAt]).split(' ')[0]} (${times(line.ratios[line.leavesAt])}x the line), ` +
    `within ${Math.round(100 * tolerance)}% up to ${label(name, r.points[before]).split(' ')[0]}.`
}

/** The whole epochs trained, against their projection from the parts: does set-up + steps + evaluation add up? */
function epochCheck (name, r) {
  const whole = r.points.filter((p) => p.ours?.epochSeconds !== undefined || p.pytorch?.epochSeconds !== undefined)
  if (!whole.length) return []
  const parts = (f) => (f?.stepSeconds === undefined || f.evalSeconds === undefined
    ? undefined
    : f.setupSeconds + f.startSeconds + f.batches * f.stepSeconds + f.evalSeconds)
  const run = (f) => (f?.epochSeconds === undefined ? undefined : f.setupSeconds + f.epochSeconds)
  return ['**check: a whole first epoch (set-up + epoch with its evaluation) against the sum of the parts (s)**', '',
    '| x | siamese-torch measured | siamese-torch from the parts | PyTorch measured | PyTorch from the parts |', '| --- | --- | --- | --- | --- |',
    ...whole.map((p) => `| ${label(name, p)} | ${fmt(run(p.ours))} | ${fmt(parts(p.ours))} | ${fmt(run(p.pytorch))} | ${fmt(parts(p.pytorch))} |`), '']
}
