#!/usr/bin/env node
// A large image folder read by datasets.imageFolder: how fast (images/s, sharp decoding in
// parallel), how much memory it takes (peak resident memory minus the memory before, with LibTorch
// already loaded, over the pixel bytes: 1.0x would be the pixels alone), and how often it reports
// progress. The folder is written first
// (coloured shapes drawn with sharp, PNG, 128x128), then read at 105x105x3 in a fresh process.
// Writes scripts/bench/results/<date>[-N]-folder.json and .md.
// Usage: node scripts/bench/folder.mjs [--count 50000] [--dir /tmp/siamese-folder-50000]
//        node scripts/bench/folder.mjs --child DIR   (the measured read; prints JSON)
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))

if (process.argv[2] === '--child') {
  const { datasets } = await import('../../dist/index.mjs')
  const { binding } = await import('../../dist/binding.js')
  binding() // LibTorch loaded first: its own memory is not the folder's
  const before = process.memoryUsage().rss
  let events = 0
  const started = performance.now()
  const split = await datasets.imageFolder(process.argv[3], { width: 105, height: 105, channels: 3, onProgress: () => { events++ } })
  const seconds = (performance.now() - started) / 1000
  const images = split.train.count + split.test.count
  // Counted, not read: reading a set's images would copy its pixels into JavaScript.
  const pixelBytes = images * 105 * 105 * 3
  const peak = process.resourceUsage().maxRSS * 1024
  console.log(JSON.stringify({
    images,
    seconds,
    imagesPerSecond: images / seconds,
    pixelBytes,
    rssBefore: before,
    peakRss: peak,
    extraOverPixels: (peak - before) / pixelBytes,
    progressEvents: events
  }))
  process.exit(0)
}

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}
const count = Number(arg('count', 50000))
const dir = arg('dir', join(tmpdir(), `siamese-folder-${count}`))
if (!existsSync(join(dir, 'done'))) {
  const { writeShapes } = await import('../../test/helpers/shapes.mjs')
  console.error(`writing ${count} images into ${dir} ...`)
  await writeShapes(dir, { perClass: Math.ceil(count / 4), size: 128, seed: 21 })
  writeFileSync(join(dir, 'done'), '')
}
const result = {
  date: new Date().toISOString().slice(0, 10),
  machine: `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} vCPUs`,
  what: `datasets.imageFolder of ${count} PNG files (128x128, coloured shapes) read at 105x105x3 in a fresh process`,
  ...JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', dir], { encoding: 'utf8' }).trim().split('\n').at(-1))
}
const mb = (bytes) => (bytes / 1e6).toFixed(0)
const table = [
  '| figure | value |', '| --- | --- |',
  `| images | ${result.images} |`,
  `| decoding throughput (images/s) | ${result.imagesPerSecond.toFixed(0)} (${result.seconds.toFixed(1)} s) |`,
  `| pixel bytes (MB) | ${mb(result.pixelBytes)} |`,
  `| resident memory before / peak (MB) | ${mb(result.rssBefore)} / ${mb(result.peakRss)} |`,
  `| memory taken, over the pixel bytes | ${result.extraOverPixels.toFixed(2)}x |`,
  `| progress events | ${result.progressEvents} |`
].join('\n')
const out = join(here, 'results')
mkdirSync(out, { recursive: true })
let name = `${result.date}-folder`
for (let n = 2; existsSync(join(out, `${name}.json`)); n++) name = `${result.date}-${n}-folder`
writeFileSync(join(out, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`)
writeFileSync(join(out, `${name}.md`), `# Image folder, ${result.date}\n\n${result.machine}. ${result.what}.\n\n${table}\n`)
console.log(table)
