#!/usr/bin/env node
// Concurrent single-pair predicts with and without shared forward passes (native/addon/batcher.h):
// at 1, 16 and 64 calls in flight, each caller sending its next call as soon as its last settles,
// the calls per second and each call's latency (p50, p99), on the reference model at 28x28. Calls
// go through the addon's predictPairs (what model.predict sends, its inputs already pixels).
// Batched is the model's default bound (predictBatch: 32 pairs a pass on a CPU); at 64 in flight
// also passes of up to 256 pairs, the default before.
// Writes scripts/bench/results/<date>[-N]-batching.json and .md and prints the table.
// --device cuda runs it on a GPU (scripts/gpu/run.sh does), where bf16 is measured too.
// Usage: node scripts/bench/batching.mjs [--calls 3000] [--threads 2] [--device cpu]
import { performance } from 'node:perf_hooks'
import { datasets, version } from '../../dist/index.mjs'
import { binding } from '../../dist/binding.js'
import { median, thisMachine, writeResult } from './common.mjs'

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const calls = arg('calls', 3000)
const threads = arg('threads', 2)
const device = process.argv.includes('--device') ? process.argv[process.argv.indexOf('--device') + 1] : 'cpu'

const { test } = await datasets.embedded()
const image = (i) => test.images.slice(i * 784, (i + 1) * 784)
const config = { tower: 'reference', width: 28, height: 28, channels: 1, embeddingSize: 512, mean: [0.1307], std: [0.3081], loss: 'pair-ce', margin: 1, threshold: 0.5 }
const native = await binding().createModel(config, device, 1, threads)
const defaultBatch = native.info().predictBatch

const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]
}

/** `total` calls, `concurrency` in flight: calls a second and latencies (ms). */
async function run (concurrency, total) {
  let next = 0
  const latencies = []
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      const i = next++
      const t0 = performance.now()
      await native.predictPairs(image(i % 1000), image((i * 7 + 3) % 1000), 1)
      latencies.push(performance.now() - t0)
    }
  }))
  const seconds = (performance.now() - started) / 1000
  return { callsPerSecond: total / seconds, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) }
}

const rows = []
for (const concurrency of [1, 16, 64]) {
  const row = { concurrency }
  for (const [name, maxPairs] of [['unbatched', 0], ['batched', defaultBatch], ...(concurrency === 64 ? [['batched256', 256]] : [])]) {
    native.setPredictBatch(maxPairs)
    await run(concurrency, 200) // warm-up
    const reps = [await run(concurrency, calls), await run(concurrency, calls)]
    row[name] = { callsPerSecond: median(reps.map((r) => r.callsPerSecond)), p50: median(reps.map((r) => r.p50)), p99: median(reps.map((r) => r.p99)) }
    console.error(`${concurrency} in flight, ${name}: ${row[name].callsPerSecond.toFixed(0)} calls/s, p50 ${row[name].p50.toFixed(2)} ms, p99 ${row[name].p99.toFixed(2)} ms`)
  }
  rows.push(row)
}
// The ceiling: one caller, the forward pass fed whole batches of 64 pairs (what 64 callers can at
// best share), against one pair at a time; pairs a second, median of 3 runs of `calls` pairs. In
// fp32, and in bfloat16 where this CPU has it (a second model of the same weights), the runs of
// both interleaved so that a slower spell of the machine does not fall on one of them.
const inputs = (pairs) => {
  const a = new Uint8Array(pairs * 784)
  const b = new Uint8Array(pairs * 784)
  for (let p = 0; p < pairs; p++) {
    a.set(image(p % 1000), p * 784)
    b.set(image((p * 7 + 3) % 1000), p * 784)
  }
  return [a, b]
}
const pairsPerSecond = async (model, [a, b]) => {
  const pairs = a.length / 784
  const started = performance.now()
  for (let done = 0; done < calls; done += pairs) await model.predictPairs(a, b, pairs)
  return Math.ceil(calls / pairs) * pairs / ((performance.now() - started) / 1000)
}
const models = { fp32: native }
if (device !== 'cpu' || version().bf16) {
  models.bf16 = await binding().createModel(config, device, 1, threads)
  models.bf16.setPrecision('bf16')
}
const shapes = { single: inputs(1), batch64: inputs(64) }
const rates = {}
for (const [precision, model] of Object.entries(models)) {
  model.setPredictBatch(0)
  rates[precision] = { single: [], batch64: [] }
  for (const shape of Object.values(shapes)) await model.predictPairs(shape[0], shape[1], shape[0].length / 784) // warm-up
}
for (let rep = 0; rep < 3; rep++) {
  for (const [precision, model] of Object.entries(models)) {
    for (const [name, shape] of Object.entries(shapes)) rates[precision][name].push(await pairsPerSecond(model, shape))
  }
}
const ceilingOf = (precision) => ({ single: median(rates[precision].single), batch64: median(rates[precision].batch64) })
const ceiling = ceilingOf('fp32')
const bf16Ceiling = models.bf16 === undefined ? undefined : ceilingOf('bf16')
console.error(`one caller: ${ceiling.single.toFixed(0)} pairs/s one pair a call, ${ceiling.batch64.toFixed(0)} pairs/s in 64-pair calls`)
if (bf16Ceiling !== undefined) console.error(`bf16, one caller: ${bf16Ceiling.single.toFixed(0)} pairs/s one pair a call, ${bf16Ceiling.batch64.toFixed(0)} pairs/s in 64-pair calls`)
for (const model of Object.values(models)) model.dispose()

const date = new Date().toISOString().slice(0, 10)
const f = (x, d = 1) => x.toFixed(d)
const md = `# Concurrent predicts, shared forward passes, ${date}

Machine: ${thisMachine().cpuModel}, ${thisMachine().cpus} CPUs, ${threads} threads, device ${device}. The reference model (28x28 grey), single-pair calls through the addon's predictPairs, ${calls} calls a run, each of the callers sending its next call when its last settles; median of 2 runs after a warm-up. Command: \`node scripts/bench/batching.mjs --calls ${calls} --threads ${threads} --device ${device}\`.

| calls in flight | unbatched calls/s | p50 | p99 | batched calls/s | p50 | p99 | batched / unbatched |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.map((r) => `| ${r.concurrency} | ${f(r.unbatched.callsPerSecond, 0)} | ${f(r.unbatched.p50, 2)} ms | ${f(r.unbatched.p99, 2)} ms | ${f(r.batched.callsPerSecond, 0)} | ${f(r.batched.p50, 2)} ms | ${f(r.batched.p99, 2)} ms | ${f(r.batched.callsPerSecond / r.unbatched.callsPerSecond, 2)}x |`).join('\n')}

Batched in passes of up to ${defaultBatch} pairs (the model's default). At 64 in flight, in passes of up to 256 pairs instead: ${f(rows[2].batched256.callsPerSecond, 0)} calls/s, p50 ${f(rows[2].batched256.p50, 2)} ms, p99 ${f(rows[2].batched256.p99, 2)} ms.

The ceiling, one caller feeding the forward pass back to back: ${f(ceiling.single, 0)} pairs/s one pair a call, ${f(ceiling.batch64, 0)} pairs/s in 64-pair calls (${f(ceiling.batch64 / ceiling.single, 2)}x); median of 3 runs of ${calls} pairs.
${bf16Ceiling === undefined
? ''
: `
In bfloat16 (\`setPrecision('bf16')\`, runs interleaved with fp32's), the same ceiling: ${f(bf16Ceiling.single, 0)} pairs/s one pair a call, ${f(bf16Ceiling.batch64, 0)} pairs/s in 64-pair calls (${f(bf16Ceiling.batch64 / bf16Ceiling.single, 2)}x).
`}`
const name = writeResult('batching', date, { date, machine: thisMachine(), device, threads, calls, defaultBatch, rows, ceiling, bf16Ceiling }, md)
console.log(md)
console.error(`written: ${name}.json, .md`)
