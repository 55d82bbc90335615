#!/usr/bin/env node
// The HTTP server under load on loopback (autocannon): POST /compare of two 28x28 PNGs, at 1, 16
// and 64 connections, each connection sending its next request when its last is answered, with
// the model's predicts batched (the default, predictBatch 32 on a CPU) and not (predictBatch = 0);
// at 64 connections also batched in passes of up to 256 pairs (the default before). Requests a second,
// latency p50 and p99, and errors. The server runs in this process's main thread; autocannon in a
// worker thread (workers: 1; without it autocannon runs on the caller's event loop, where the
// server's work would delay its clients and its clock). Both share this machine's cores, as a
// deployment with its clients on the same host would.
// Writes scripts/bench/results/<date>[-N]-serve.json and .md and prints the table.
// Each point is run with the model on the server's default thread count (the machine's default)
// and on one fewer. The PNGs are 28x28, the model's size, as sharp writes them (RGB, grey pixels):
// the shape lib/png.ts reads without sharp. A last point sends 32x32 PNGs instead, which sharp
// decodes and resizes, at 64 connections, batched; and a last pair of points the 28x28 compare with
// the model computing in bfloat16 (where the CPU has it), at 64 connections.
// Each point is the median of --runs measurements of --seconds each.
// Usage: node scripts/bench/serve.mjs [--seconds 5] [--runs 3] [--threads 2,1]
import autocannon from 'autocannon'
import sharp from 'sharp'
import { createModel, datasets, serve, version } from '../../dist/index.mjs'
import { thisMachine, writeResult } from './common.mjs'

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const seconds = arg('seconds', 5)
const runs = arg('runs', 3)
const threadCounts = process.argv.includes('--threads')
  ? String(process.argv[process.argv.indexOf('--threads') + 1]).split(',').map(Number)
  : [...new Set([version().threads, Math.max(1, version().threads - 1)])]

const { test } = await datasets.embedded()
const png = async (i, side = 28) => sharp(Buffer.from(test.images.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } })
  .resize(side, side).png().toBuffer()
const body = JSON.stringify({ a: (await png(0)).toString('base64'), b: (await png(1)).toString('base64') })
const resizedBody = JSON.stringify({ a: (await png(0, 32)).toString('base64'), b: (await png(1, 32)).toString('base64') })
let model
let server

/** One point: `runs` measurements after a warm-up, the median by requests a second (this machine's noise is ±10%). */
async function load (connections, payload = body) {
  const request = { workers: 1, url: `${server.url}/compare`, method: 'POST', headers: { 'content-type': 'application/json' }, body: payload, connections }
  await autocannon({ ...request, duration: 2 }) // warm-up
  const results = []
  for (let i = 0; i < runs; i++) {
    const r = await autocannon({ ...request, duration: seconds })
    results.push({ requestsPerSecond: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx + r.timeouts, total: r.requests.total })
  }
  return results.sort((x, y) => x.requestsPerSecond - y.requestsPerSecond)[Math.floor(runs / 2)]
}

/** A row at `connections`: unbatched (predictBatch 0), then batched in the model's default passes. */
async function bothModes (label, connections) {
  const row = { threads: model.threads, connections }
  const defaultBatch = model.predictBatch
  for (const [name, pairs] of [['unbatched', 0], ['batched', defaultBatch]]) {
    model.predictBatch = pairs
    row[name] = await load(connections)
    console.error(`${label}, ${connections} connections, ${name}: ${row[name].requestsPerSecond.toFixed(0)} req/s, p50 ${row[name].p50} ms, p99 ${row[name].p99} ms, ${row[name].errors} errors`)
  }
  model.predictBatch = defaultBatch
  return row
}

const rows = []
const resizedRows = []
const unboundedRows = []
for (const threads of threadCounts) {
  model = await createModel({ seed: 1, threads })
  const defaultBatch = model.predictBatch
  server = await serve({ models: { digits: model }, port: 0 })
  for (const connections of [1, 16, 64]) rows.push(await bothModes(`${threads} threads`, connections))
  model.predictBatch = 256
  unboundedRows.push({ threads, batch: 256, ...await load(64) })
  console.error(`${threads} threads, 64 connections, passes of up to 256 pairs: ${unboundedRows.at(-1).requestsPerSecond.toFixed(0)} req/s, p50 ${unboundedRows.at(-1).p50} ms, p99 ${unboundedRows.at(-1).p99} ms`)
  model.predictBatch = defaultBatch
  const resized = { threads, ...await load(64, resizedBody) }
  resizedRows.push(resized)
  console.error(`${threads} threads, 64 connections, batched, 32x32 PNGs: ${resized.requestsPerSecond.toFixed(0)} req/s, p50 ${resized.p50} ms, p99 ${resized.p99} ms`)
  await server.close()
  model.dispose()
}

// A model computing in bfloat16 (where this CPU has it), on the server's default threads, at 64
// connections: batched and unbatched.
let bf16Row
if (version().bf16) {
  model = await createModel({ seed: 1, threads: version().threads, precision: 'bf16' })
  server = await serve({ models: { digits: model }, port: 0 })
  bf16Row = await bothModes(`bf16, ${version().threads} threads`, 64)
  await server.close()
  model.dispose()
}

const date = new Date().toISOString().slice(0, 10)
const f = (x, d = 0) => Number(x).toFixed(d)
const modesHeader = `| threads | connections | unbatched req/s | p50 | p99 | errors | batched req/s | p50 | p99 | errors | batched / unbatched |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`
const modesRow = (r) => `| ${r.threads} | ${r.connections} | ${f(r.unbatched.requestsPerSecond)} | ${r.unbatched.p50} ms | ${r.unbatched.p99} ms | ${r.unbatched.errors} | ${f(r.batched.requestsPerSecond)} | ${r.batched.p50} ms | ${r.batched.p99} ms | ${r.batched.errors} | ${f(r.batched.requestsPerSecond / r.unbatched.requestsPerSecond, 2)}x |`
const md = `# The HTTP server under load, ${date}

Machine: ${thisMachine().cpuModel}, ${thisMachine().cpus} CPUs; the model on ${threadCounts.join(' then ')} LibTorch threads (${version().threads}: the server's default for the models it loads). \`POST /compare\` of two 28x28 PNGs as sharp writes them (RGB, grey pixels; the reference model), autocannon on loopback in a worker thread of this process; each point the median (by requests a second) of ${runs} runs of ${seconds} s after a 2 s warm-up. Command: \`node scripts/bench/serve.mjs --seconds ${seconds} --runs ${runs} --threads ${threadCounts.join(',')}\`.

${modesHeader}
${rows.map(modesRow).join('\n')}

The same 64 connections batched in passes of up to 256 pairs instead of the default 32:

| threads | req/s | p50 | p99 | errors |
| ---: | ---: | ---: | ---: | ---: |
${unboundedRows.map((r) => `| ${r.threads} | ${f(r.requestsPerSecond)} | ${r.p50} ms | ${r.p99} ms | ${r.errors} |`).join('\n')}

The same compare with 32x32 PNGs, which sharp decodes and resizes to 28x28 (64 connections, batched):

| threads | req/s | p50 | p99 | errors |
| ---: | ---: | ---: | ---: | ---: |
${resizedRows.map((r) => `| ${r.threads} | ${f(r.requestsPerSecond)} | ${r.p50} ms | ${r.p99} ms | ${r.errors} |`).join('\n')}
${bf16Row === undefined
  ? '\nNo bf16 point: this CPU has no bfloat16.\n'
  : `
The same 28x28 compare with the model computing in bfloat16 (\`precision: 'bf16'\`), 64 connections:

${modesHeader}
${modesRow(bf16Row)}
`}`
const name = writeResult('serve', date, { date, machine: thisMachine(), threads: threadCounts, seconds, runs, rows, unboundedRows, resizedRows, bf16Row }, md)
console.log(md)
console.error(`written: ${name}.json, .md`)
