#!/usr/bin/env node
// Concurrent single-pair predicts with and without shared forward passes (native/addon/batcher.h):
// at 1, 16 and 64 calls in flight, each caller sending its next call as soon as its last settles,
// the calls per second and each call's latency (p50, p99), on the reference model at 28x28. Calls
// go through the addon's predictPairs (what model.predict sends, its inputs already pixels).
// Writes scripts/bench/results/<date>[-N]-batching.json and .md and prints the table.
// Usage: node scripts/bench/batching.mjs [--calls 3000] [--threads 2]
import { performance } from 'node:perf_hooks'
import { datasets } from '../../dist/index.mjs'
import { binding } from '../../dist/binding.js'
import { median, thisMachine, writeResult } from './common.mjs'

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const calls = arg('calls', 3000)
const threads = arg('threads', 2)

const { test } = await datasets.embedded()
const image = (i) => test.images.slice(i * 784, (i + 1) * 784)
const config = { tower: 'reference', width: 28, height: 28, channels: 1, embeddingSize: 512, mean: [0.1307], std: [0.3081], loss: 'pair-ce', margin: 1, threshold: 0.5 }
const native = await binding().createModel(config, 'cpu', 1, threads)

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
  for (const [name, maxPairs] of [['unbatched', 0], ['batched', 256]]) {
    native.setPredictBatch(maxPairs)
    await run(concurrency, 200) // warm-up
    const reps = [await run(concurrency, calls), await run(concurrency, calls)]
    row[name] = { callsPerSecond: median(reps.map((r) => r.callsPerSecond)), p50: median(reps.map((r) => r.p50)), p99: median(reps.map((r) => r.p99)) }
    console.error(`${concurrency} in flight, ${name}: ${row[name].callsPerSecond.toFixed(0)} calls/s, p50 ${row[name].p50.toFixed(2)} ms, p99 ${row[name].p99.toFixed(2)} ms`)
  }
  rows.push(row)
}
// The ceiling: one caller, the forward pass fed whole batches of 64 pairs (what 64 callers can at
// best share), against one pair at a time; pairs a second, median of 3 runs of `calls` pairs.
const feed = async (pairs) => {
  const a = new Uint8Array(pairs * 784)
  const b = new Uint8Array(pairs * 784)
  for (let p = 0; p < pairs; p++) {
    a.set(image(p % 1000), p * 784)
    b.set(image((p * 7 + 3) % 1000), p * 784)
  }
  await native.predictPairs(a, b, pairs) // warm-up
  const rates = []
  for (let rep = 0; rep < 3; rep++) {
    const started = performance.now()
    for (let done = 0; done < calls; done += pairs) await native.predictPairs(a, b, pairs)
    rates.push(Math.ceil(calls / pairs) * pairs / ((performance.now() - started) / 1000))
  }
  return median(rates)
}
native.setPredictBatch(0)
const ceiling = { single: await feed(1), batch64: await feed(64) }
console.error(`one caller: ${ceiling.single.toFixed(0)} pairs/s one pair a call, ${ceiling.batch64.toFixed(0)} pairs/s in 64-pair calls`)
native.dispose()

const date = new Date().toISOString().slice(0, 10)
const f = (x, d = 1) => x.toFixed(d)
const md = `# Concurrent predicts, shared forward passes, ${date}

Machine: ${thisMachine().cpuModel}, ${thisMachine().cpus} CPUs, ${threads} threads. The reference model (28x28 grey), single-pair calls through the addon's predictPairs, ${calls} calls a run, each of the callers sending its next call when its last settles; median of 2 runs after a warm-up. Command: \`node scripts/bench/batching.mjs --calls ${calls} --threads ${threads}\`.

| calls in flight | unbatched calls/s | p50 | p99 | batched calls/s | p50 | p99 | batched / unbatched |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.map((r) => `| ${r.concurrency} | ${f(r.unbatched.callsPerSecond, 0)} | ${f(r.unbatched.p50, 2)} ms | ${f(r.unbatched.p99, 2)} ms | ${f(r.batched.callsPerSecond, 0)} | ${f(r.batched.p50, 2)} ms | ${f(r.batched.p99, 2)} ms | ${f(r.batched.callsPerSecond / r.unbatched.callsPerSecond, 2)}x |`).join('\n')}

The ceiling, one caller feeding the forward pass back to back: ${f(ceiling.single, 0)} pairs/s one pair a call, ${f(ceiling.batch64, 0)} pairs/s in 64-pair calls (${f(ceiling.batch64 / ceiling.single, 2)}x); median of 3 runs of ${calls} pairs.
`
const name = writeResult('batching', date, { date, machine: thisMachine(), threads, calls, rows, ceiling }, md)
console.log(md)
console.error(`written: ${name}.json, .md`)
