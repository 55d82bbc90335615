#!/usr/bin/env node
// The HTTP server under load on loopback (autocannon): POST /compare of two 28x28 PNGs, at 1, 16
// and 64 connections, each connection sending its next request when its last is answered, with
// the model's predicts batched (the default) and not (predictBatch = 0). Requests a second,
// latency p50 and p99, and errors. The server runs in this process; autocannon in a worker of its
// own (its default), so both share this machine's cores, as a deployment on one host would.
// Writes scripts/bench/results/<date>[-N]-serve.json and .md and prints the table.
// Each point is run with the model on the server's default thread count (the machine's default)
// and on one fewer. The PNGs are 28x28, the model's size, as sharp writes them (RGB, grey pixels):
// the shape lib/png.ts reads without sharp. A last point sends 32x32 PNGs instead, which sharp
// decodes and resizes, at 64 connections, batched.
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
  const request = { url: `${server.url}/compare`, method: 'POST', headers: { 'content-type': 'application/json' }, body: payload, connections }
  await autocannon({ ...request, duration: 2 }) // warm-up
  const results = []
  for (let i = 0; i < runs; i++) {
    const r = await autocannon({ ...request, duration: seconds })
    results.push({ requestsPerSecond: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx + r.timeouts, total: r.requests.total })
  }
  return results.sort((x, y) => x.requestsPerSecond - y.requestsPerSecond)[Math.floor(runs / 2)]
}

const rows = []
const resizedRows = []
for (const threads of threadCounts) {
  model = await createModel({ seed: 1, threads })
  server = await serve({ models: { digits: model }, port: 0 })
  for (const connections of [1, 16, 64]) {
    const row = { threads, connections }
    for (const [name, pairs] of [['unbatched', 0], ['batched', 256]]) {
      model.predictBatch = pairs
      row[name] = await load(connections)
      console.error(`${threads} threads, ${connections} connections, ${name}: ${row[name].requestsPerSecond.toFixed(0)} req/s, p50 ${row[name].p50} ms, p99 ${row[name].p99} ms, ${row[name].errors} errors`)
    }
    rows.push(row)
  }
  model.predictBatch = 256
  const resized = { threads, ...await load(64, resizedBody) }
  resizedRows.push(resized)
  console.error(`${threads} threads, 64 connections, batched, 32x32 PNGs: ${resized.requestsPerSecond.toFixed(0)} req/s, p50 ${resized.p50} ms, p99 ${resized.p99} ms`)
  await server.close()
  model.dispose()
}

const date = new Date().toISOString().slice(0, 10)
const f = (x, d = 0) => Number(x).toFixed(d)
const md = `# The HTTP server under load, ${date}

Machine: ${thisMachine().cpuModel}, ${thisMachine().cpus} CPUs; the model on ${threadCounts.join(' then ')} LibTorch threads (${version().threads}: the server's default for the models it loads). \`POST /compare\` of two 28x28 PNGs as sharp writes them (RGB, grey pixels; the reference model), autocannon on loopback in this process's worker; each point the median (by requests a second) of ${runs} runs of ${seconds} s after a 2 s warm-up. Command: \`node scripts/bench/serve.mjs --seconds ${seconds} --runs ${runs} --threads ${threadCounts.join(',')}\`.

| threads | connections | unbatched req/s | p50 | p99 | errors | batched req/s | p50 | p99 | errors | batched / unbatched |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.map((r) => `| ${r.threads} | ${r.connections} | ${f(r.unbatched.requestsPerSecond)} | ${r.unbatched.p50} ms | ${r.unbatched.p99} ms | ${r.unbatched.errors} | ${f(r.batched.requestsPerSecond)} | ${r.batched.p50} ms | ${r.batched.p99} ms | ${r.batched.errors} | ${f(r.batched.requestsPerSecond / r.unbatched.requestsPerSecond, 2)}x |`).join('\n')}

The same compare with 32x32 PNGs, which sharp decodes and resizes to 28x28 (64 connections, batched):

| threads | req/s | p50 | p99 | errors |
| ---: | ---: | ---: | ---: | ---: |
${resizedRows.map((r) => `| ${r.threads} | ${f(r.requestsPerSecond)} | ${r.p50} ms | ${r.p99} ms | ${r.errors} |`).join('\n')}
`
const name = writeResult('serve', date, { date, machine: thisMachine(), threads: threadCounts, seconds, runs, rows, resizedRows }, md)
console.log(md)
console.error(`written: ${name}.json, .md`)
