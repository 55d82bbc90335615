#!/usr/bin/env node
// Omniglot one-shot: train on one set of alphabets, evaluate on others never seen, as Koch et al.
// measure it (20-way one-shot within an alphabet), plus 5-way 1-shot and 5-shot across alphabets
// and the pair metrics. Reads the archives from --root (nothing is downloaded): by default the
// standard ones (images_background.zip, images_evaluation.zip); --train and --test name others
// of the same layout (e.g. the authors' two small background subsets,
// images_background_small1.zip and images_background_small2.zip, 5 alphabets each).
// Writes scripts/bench/results/<date>[-N]-omniglot.json and .md and prints the table.
// Usage: node scripts/bench/omniglot.mjs --root DIR [--train FILE --test FILE] [--epochs 5]
//        [--tower conv4] [--loss triplet] [--size 105] [--threads 2] [--episodes 400]
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { datasets, train, version } from '../../dist/index.mjs'
import { OMNIGLOT, loadOmniglot } from '../../dist/datasets/omniglot.js'

const here = dirname(fileURLToPath(import.meta.url))
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}
const root = arg('root')
if (root === undefined) throw new Error('--root DIR: the folder holding the archives')
const trainFile = arg('train', OMNIGLOT.archives.train.file)
const testFile = arg('test', OMNIGLOT.archives.test.file)
const epochs = Number(arg('epochs', 5))
const tower = arg('tower', 'conv4')
const loss = arg('loss', 'triplet')
const threads = Number(arg('threads', 2))
const episodes = Number(arg('episodes', 400))

// Archives given by name are checked against their own MD5 (they are local files, read as they are).
const md5 = (file) => createHash('md5').update(readFileSync(join(root, file))).digest('hex')
const catalogue = { ...OMNIGLOT, archives: { train: { file: trainFile, md5: md5(trainFile) }, test: { file: testFile, md5: md5(testFile) } } }
const data = await loadOmniglot(catalogue, { root })
const alphabets = (set) => new Set(set.classes.map((c) => c.split('/')[0])).size

const started = Date.now()
const { model, history } = await train({ data, tower, loss, epochs, threads, seed: 0, saveEvery: 0 })
const seconds = (Date.now() - started) / 1000
// Only characters never trained count (the authors' two small subsets share two alphabets).
const trained = new Set(data.train.classes)
const unseen = data.test.classes.filter((c) => !trained.has(c))
const test = unseen.length === data.test.classes.length ? data.test : datasets.splitClasses(data.test, { test: unseen }).test
const evaluate = async (options) => {
  const m = await model.evaluate(test, { episodes, seed: 0, allPairs: false, retrieval: false, ...options })
  return { ...m.episodes, auc: m.verification.pairs.auc, eer: m.verification.pairs.eer, unseenClasses: m.unseenClasses }
}
const runs = [
  ['20-way 1-shot within an alphabet', await evaluate({ ways: 20, shots: 1, within: 'alphabet' })],
  ['5-way 1-shot', await evaluate({ ways: 5, shots: 1 })],
  ['5-way 5-shot', await evaluate({ ways: 5, shots: 5 })]
]
const all = await model.evaluate(test, { ways: 0 })
model.dispose()

const pct = (x) => `${(100 * x).toFixed(1)}%`
const command = `node scripts/bench/omniglot.mjs ${process.argv.slice(2).join(' ')}`
const lines = [
  `\`${command}\``,
  '',
  `Trained on ${trainFile} (${data.train.classes.length} characters of ${alphabets(data.train)} alphabets, ${data.train.count} drawings), ` +
    `${tower}, ${loss}, ${epochs} epochs, ${threads} threads, ${seconds.toFixed(0)} s; ` +
    `evaluated on the characters of ${testFile} never trained (${test.classes.length} of its ${data.test.classes.length}, ` +
    `${alphabets(test)} alphabets, ${test.count} drawings; unseenClasses ${runs[0][1].unseenClasses}).`,
  '',
  '| episodes | accuracy | ± 95% |',
  '|---|---|---|',
  ...runs.map(([name, r]) => `| ${name} (${r.episodes}) | ${pct(r.accuracy)} | ${pct(r.ci95)} |`),
  '',
  `Fixed test pairs: AUC ${all.verification.pairs.auc.toFixed(3)}, EER ${pct(all.verification.pairs.eer)}; all ${all.verification.allPairs?.positives + all.verification.allPairs?.negatives} pairs: ` +
    `AUC ${all.verification.allPairs?.auc.toFixed(3)}, EER ${pct(all.verification.allPairs?.eer ?? 0)}, TAR@FAR=0.001 ${all.verification.allPairs?.tarAtFar[2].tar === null ? 'n/a' : pct(all.verification.allPairs?.tarAtFar[2].tar ?? 0)}; ` +
    `retrieval P@1 ${pct(all.retrieval.precisionAt1)}, MAP@R ${pct(all.retrieval.mapAtR)}.`,
  `Training loss by epoch: ${history.map((h) => h.trainLoss.toFixed(3)).join(', ')}.`
]
console.log(lines.join('\n'))
const dir = join(here, 'results')
mkdirSync(dir, { recursive: true })
const date = new Date().toISOString().slice(0, 10)
let base = join(dir, `${date}-omniglot`)
for (let n = 2; existsSync(`${base}.json`); n++) base = join(dir, `${date}-${n}-omniglot`)
writeFileSync(`${base}.json`, `${JSON.stringify({ date: new Date().toISOString(), version: version().siameseTorch, command, trainFile, testFile, tower, loss, epochs, threads, seconds, runs, history }, null, 2)}\n`)
writeFileSync(`${base}.md`, `${lines.join('\n')}\n`)
console.log(`written ${base}.json and .md`)
