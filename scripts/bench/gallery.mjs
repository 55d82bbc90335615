#!/usr/bin/env node
// Galleries at 1k, 100k and 1M items (lib/gallery.ts): opening (reading every embedding into the
// native index), enrolling (images embedded, stored in SQLite in one transaction a call, added to
// the index) and identifying (exact search over every item) on the reference model (512-value
// embeddings, pair-ce), against PyTorch's exact search of as many embeddings (a matrix product with
// the gallery's norms kept, or the weighted L1 score; then topk; OpenBLAS and the tuned allocator, as scripts/bench/common.mjs
// sets them).
//
// The first 1,000 items are real digits enrolled through gallery.enrol; the rest are written
// straight into the same tables (copies of those embeddings, each moved a little, so that no two
// are equal): enrolling a million images through the model would take most of an hour here and
// measure the model, not the gallery. Enrolment is then measured at each size on 512 more real
// digits.
// Writes scripts/bench/results/<date>[-N]-gallery.json and .md and prints the table.
// Usage: node scripts/bench/gallery.mjs [--sizes 1000,100000,1000000] [--threads 2]
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import Database from 'better-sqlite3'
import { createModel, datasets, openGallery } from '../../dist/index.mjs'
import { lastJson, median, pytorchBestEnv, pytorchLibraries, thisMachine, writeResult } from './common.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}
const sizes = arg('sizes', '1000,100000,1000000').split(',').map(Number)
const threads = Number(arg('threads', 2))
const K = 10

const { train, test } = await datasets.embedded()
const digit = (set, i) => ({ data: set.images.slice(i * 784, (i + 1) * 784), width: 28, height: 28, channels: 1 })
const model = await createModel({ seed: 1, threads })
const dims = model.config.embeddingSize
const scratch = mkdtempSync(join(tmpdir(), 'siamese-gallery-bench-'))
const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]
const rssMB = () => process.memoryUsage().rss / 2 ** 20

async function measure (size) {
  const file = join(scratch, `g${size}.sqlite`)
  const row = { size }
  // 1. the first items, real digits, through enrol (calls of 64 images)
  let gallery = await openGallery(file, model)
  const first = Math.min(size, 1000)
  let t0 = performance.now()
  for (let s = 0; s < first; s += 64) {
    const ids = Array.from({ length: Math.min(64, first - s) }, (_, j) => s + j)
    for (const label of new Set(ids.map((i) => train.labels[i]))) {
      await gallery.enrol(String(label), ids.filter((i) => train.labels[i] === label).map((i) => digit(train, i)))
    }
  }
  row.firstEnrolSeconds = (performance.now() - t0) / 1000
  gallery.close()
  // 2. the rest, straight into the tables
  if (size > first) {
    const db = new Database(file)
    db.pragma('synchronous = NORMAL') // filling, not measured
    const source = db.prepare('SELECT label, embedding, image FROM items ORDER BY id').all()
    const insert = db.prepare('INSERT INTO items (label, sha256, embedding, image, created) VALUES (?, ?, ?, ?, ?)')
    const created = new Date().toISOString()
    t0 = performance.now()
    for (let s = first; s < size; s += 20_000) {
      db.transaction(() => {
        for (let i = s; i < Math.min(size, s + 20_000); i++) {
          const from = source[i % source.length]
          const e = new Float32Array(from.embedding.buffer.slice(from.embedding.byteOffset, from.embedding.byteOffset + dims * 4))
          e[i % dims] += 1e-3 * (1 + (i % 97))
          insert.run(from.label, createHash('sha256').update(String(i)).digest('hex'), Buffer.from(e.buffer), from.image, created)
        }
      })()
    }
    row.fillSeconds = (performance.now() - t0) / 1000
    db.close()
  }
  row.fileMB = statSync(file).size / 2 ** 20
  // 3. opening: every embedding read into the index
  global.gc?.()
  const rssBefore = rssMB()
  t0 = performance.now()
  gallery = await openGallery(file, model)
  row.openSeconds = (performance.now() - t0) / 1000
  global.gc?.()
  row.indexMB = rssMB() - rssBefore
  // 4. identify: one query at a time, and 64 a call
  const query = (i) => digit(test, i % test.count)
  await gallery.identify(query(0), { k: K })
  const single = []
  for (let i = 0; i < 21; i++) {
    t0 = performance.now()
    await gallery.identify(query(i), { k: K })
    single.push(performance.now() - t0)
  }
  row.identify1 = { p50: median(single), p99: percentile(single, 0.99) }
  const batch = []
  for (let i = 0; i < 3; i++) {
    t0 = performance.now()
    await gallery.identify(Array.from({ length: 64 }, (_, j) => query(64 * i + j)), { k: K })
    batch.push(performance.now() - t0)
  }
  row.identify64 = { ms: median(batch), queriesPerSecond: 64000 / median(batch) }
  // 5. enrolment at this size: 512 more real digits, calls of 64 and of 1
  const calls = []
  t0 = performance.now()
  for (let s = 0; s < 512; s += 64) {
    const c0 = performance.now()
    await gallery.enrol('new', Array.from({ length: 64 }, (_, j) => digit(test, s + j)))
    calls.push(performance.now() - c0)
  }
  row.enrol64 = { itemsPerSecond: 512 / ((performance.now() - t0) / 1000), callMs: median(calls) }
  const ones = []
  for (let i = 0; i < 32; i++) {
    const c0 = performance.now()
    await gallery.enrol('one', digit(test, 600 + i))
    ones.push(performance.now() - c0)
  }
  row.enrol1 = { p50: median(ones), p99: percentile(ones, 0.99) }
  gallery.close()
  rmSync(file, { force: true })
  // 6. PyTorch's exact search over as many embeddings
  const { env, asked, notes } = pytorchBestEnv(threads)
  row.pytorch = lastJson(execFileSync('/usr/bin/python3', [join(here, 'gallery_search.py'), '--rows', String(size), '--dims', String(dims),
    '--threads', String(threads), '--k', String(K)], { env, cwd: here, maxBuffer: 1 << 24 }).toString())
  row.pytorch.asked = asked
  row.pytorch.notes = notes
  console.error(JSON.stringify({ ...row, pytorch: { ...row.pytorch, runtime: pytorchLibraries(row.pytorch.runtime) } }))
  return row
}

const rows = []
try {
  for (const size of sizes) rows.push(await measure(size))
} finally {
  model.dispose()
  rmSync(scratch, { recursive: true, force: true })
}

const date = new Date().toISOString().slice(0, 10)
const f = (x, d = 1) => (x === undefined ? '–' : x.toFixed(d))
const n = (x) => x.toLocaleString('en-US')
const libs = pytorchLibraries(rows[0].pytorch.runtime)
const md = `# Galleries: enrol and identify at ${sizes.map(n).join(', ')} items, ${date}

Machine: ${thisMachine().cpuModel}, ${thisMachine().cpus} CPUs, ${threads} threads. The reference model (28x28 grey, 512-value embeddings, pair-ce), untrained (the timings do not depend on the weights). k = ${K}. Command: \`node --expose-gc scripts/bench/gallery.mjs --sizes ${sizes.join(',')} --threads ${threads}\`.

The first 1,000 items are digits enrolled through \`gallery.enrol\`; the rest are written into the same tables directly (copies of those embeddings, each moved a little). Enrolment is then measured at each size with 512 more digits. PyTorch: ${libs.blas ?? 'its BLAS'}, ${libs.allocator ?? 'its allocator'}, ATen ${libs.cpuCapability ?? '?'}; the same exact search (every embedding scored, best k kept) over as many random embeddings; its figures are the search alone, ours include embedding the query image (about 1 ms).

| items | file | open (read into memory) | memory | identify, 1 image: p50 / p99 | 64 images a call | enrol, calls of 64 | enrol, 1 image: p50 / p99 |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.map((r) => `| ${n(r.size)} | ${f(r.fileMB, 0)} MB | ${f(r.openSeconds, 2)} s | ${f(r.indexMB, 0)} MB | ${f(r.identify1.p50)} / ${f(r.identify1.p99)} ms | ${f(r.identify64.ms, 0)} ms (${f(r.identify64.queriesPerSecond, 0)} queries/s) | ${f(r.enrol64.itemsPerSecond, 0)} items/s | ${f(r.enrol1.p50)} / ${f(r.enrol1.p99)} ms |`).join('\n')}

Exact search, PyTorch against ours (ms a search; ours: pair-ce, the reference model's score, image to answer):

| items | ours, 1 query | PyTorch euclidean (matrix product), 1 | PyTorch pair-ce score, 1 | ours, 64 queries | PyTorch euclidean, 64 | PyTorch pair-ce, 64 |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.map((r) => `| ${n(r.size)} | ${f(r.identify1.p50)} | ${f(r.pytorch.euclidean1)} | ${f(r.pytorch.pairCe1)} | ${f(r.identify64.ms, 0)} | ${f(r.pytorch.euclidean64, 0)} | ${f(r.pytorch.pairCe64, 0)} |`).join('\n')}
`
const name = writeResult('gallery', date, { date, machine: thisMachine(), threads, k: K, rows }, md)
console.log(md)
console.error(`written: ${name}.json, .md`)
