#!/usr/bin/env node
// Accuracy on classes never trained: Fashion-MNIST (or the embedded digits, --data digits) with
// classes 0-5 trained and 6-9 held out (datasets.splitClasses), siamese-torch against PyTorch (scripts/bench/unseen.py) on the same
// training triplets, the same fixed test pairs and the same kind of seeded episodes. For each
// tower and loss: 4-way 1-shot and 5-shot accuracy, pair AUC and EER, on the unseen classes and on
// the test images of the trained ones.
// Writes scripts/bench/results/<date>[-N]-unseen.json and .md and prints the table.
// Usage: node scripts/bench/unseen.mjs [--data fashion|digits] [--per-class 1000] [--epochs 2] [--threads 2] [--episodes 1000]
//        [--runs reference:pair-ce,reference:contrastive,conv4:triplet] [--ours-only conv4:triplet:batch-hard[:augment]]
// --runs: tower:loss pairs run by both tools; --ours-only: tower:loss:mining[:augment] run by
// siamese-torch alone (the knobs PyTorch's side does not have: mining, augmentation).
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { datasets, train, version } from '../../dist/index.mjs'
import { lastJson } from './common.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}
const perClass = Number(arg('per-class', 1000))
const epochs = Number(arg('epochs', 2))
const threads = Number(arg('threads', 2))
const episodes = Number(arg('episodes', 1000))
const runs = arg('runs', 'reference:pair-ce,reference:contrastive,conv4:triplet').split(',').filter(Boolean).map((r) => r.split(':'))
const oursOnly = arg('ours-only', 'conv4:triplet:batch-hard').split(',').filter(Boolean).map((r) => r.split(':'))
const root = arg('root', '/usr/share/datasets/fashion-mnist')
const digits = arg('data', 'fashion') === 'digits'
const python = process.env.SIAMESE_TORCH_BENCH_PYTHON ?? '/usr/bin/python3'

/** The first `count` images of each class of `set`, in their order. */
function firstOfEachClass (set, count) {
  const taken = new Map()
  const keep = []
  for (let i = 0; i < set.count; i++) {
    const n = taken.get(set.labels[i]) ?? 0
    if (n < count) keep.push(i)
    taken.set(set.labels[i], n + 1)
  }
  const size = set.width * set.height
  return datasets.fromArrays({
    images: Buffer.concat(keep.map((i) => set.images.subarray(i * size, (i + 1) * size))),
    labels: keep.map((i) => set.labels[i]),
    width: set.width,
    height: set.height,
    classes: set.classes
  })
}

const full = digits ? await datasets.embedded() : await datasets.fashionMnist({ root })
const data = { name: full.name, train: firstOfEachClass(full.train, perClass), test: full.test }
// Classes 0-5 trained, 6-9 held out.
const TRAINED = full.train.classes.slice(0, 6)
const UNSEEN = full.train.classes.slice(6)
const split = datasets.splitClasses(data, { test: UNSEEN })
const seen = datasets.splitClasses(data, { test: TRAINED }).test
const scratch = mkdtempSync(join(tmpdir(), 'siamese-bench-unseen-'))
const int32 = (rows) => new Uint8Array(new Int32Array(rows).buffer)
const tripletRows = (t) => Array.from(t.anchor, (a, i) => [a, t.positive[i], t.negative[i]]).flat()

// The folder unseen.py reads (its docstring describes it). Normalised as the recipe does for the
// digits, with Fashion-MNIST's own statistics for it.
const mean = digits ? 0.1307 : 0.2860
const std = digits ? 0.3081 : 0.3530
writeFileSync(join(scratch, 'meta.json'), JSON.stringify({
  width: 28, height: 28, channels: 1, mean: [mean], std: [std], epochs, train: { count: split.train.count }, test: { count: split.test.count }, seen: { count: seen.count }
}))
writeFileSync(join(scratch, 'train-pixels.bin'), split.train.images)
// Labels as the whole set's class numbers, so that unseen.py sees the two sides' classes apart.
const wholeLabels = (set) => Array.from(set.labels, (l) => full.train.classes.indexOf(set.classes[l]))
writeFileSync(join(scratch, 'train-labels.bin'), int32(wholeLabels(split.train)))
for (let e = 0; e < epochs; e++) {
  writeFileSync(join(scratch, `triplets-${e}.bin`), int32(tripletRows(datasets.triplets(split.train, { scheme: 'balanced', seed: 0, epoch: e }))))
}
for (const [name, set] of [['test', split.test], ['seen', seen]]) {
  writeFileSync(join(scratch, `${name}-pixels.bin`), set.images)
  writeFileSync(join(scratch, `${name}-labels.bin`), int32(wholeLabels(set)))
  // The fixed test pairs evaluate() scores: the balanced scheme at seed 0, epoch 0.
  writeFileSync(join(scratch, `${name}-pairs.bin`), int32(tripletRows(datasets.triplets(set, { scheme: 'balanced', seed: 0, epoch: 0 }))))
}

async function ours (tower, loss, mining = 'none', augment = '') {
  const started = Date.now()
  const { model } = await train({ data: split, tower, loss, mining, augment: augment === 'augment', epochs, threads, seed: 0, mean, std, saveEvery: 0 })
  const seconds = (Date.now() - started) / 1000
  const measure = async (set) => {
    const one = await model.evaluate(set, { ways: 4, shots: 1, episodes, seed: 0, allPairs: false, retrieval: false })
    const five = await model.evaluate(set, { ways: 4, shots: 5, episodes, seed: 0, allPairs: false, retrieval: false })
    return {
      oneShot: { accuracy: one.episodes.accuracy, ci95: one.episodes.ci95 },
      fiveShot: { accuracy: five.episodes.accuracy, ci95: five.episodes.ci95 },
      auc: one.verification.pairs.auc,
      eer: one.verification.pairs.eer,
      unseenClasses: one.unseenClasses
    }
  }
  const result = { tool: 'siamese-torch', tower, loss, mining, augment: augment === 'augment', seconds, unseen: await measure(split.test), seen: await measure(seen) }
  model.dispose()
  return result
}

function pytorch (tower, loss) {
  const out = execFileSync(python, [join(here, 'unseen.py'), '--data', scratch, '--tower', tower, '--loss', loss, '--epochs', String(epochs),
    '--threads', String(threads), '--episodes', String(episodes), '--ways', '4'], { encoding: 'utf8', maxBuffer: 1 << 26 })
  return lastJson(out)
}

const results = []
try {
  for (const [tower, loss] of runs) {
    results.push(await ours(tower, loss))
    results.push(pytorch(tower, loss))
    console.error(JSON.stringify(results.slice(-2).map((r) => [r.tool, r.tower, r.loss, r.unseen.oneShot.accuracy])))
  }
  for (const [tower, loss, mining, augment] of oursOnly) results.push(await ours(tower, loss, mining, augment))
} finally {
  rmSync(scratch, { recursive: true, force: true })
}

const pct = (x) => `${(100 * x).toFixed(1)}%`
const lines = [
  `\`${`node scripts/bench/unseen.mjs ${process.argv.slice(2).join(' ')}`.trim()}\``,
  '',
  `${data.name}, trained on ${TRAINED.join(', ')} (at most ${perClass} training images a class: ${split.train.count}; ${epochs} epochs, ${threads} threads);`,
  `unseen: ${UNSEEN.join(', ')} (their ${split.test.count} test images); seen: the trained classes' ${seen.count} test images.`,
  `4-way episodes (${episodes}, 1 query a class); AUC and EER on the fixed test pairs.`,
  '',
  '| tower | loss | tool | unseen 1-shot | unseen 5-shot | unseen AUC | unseen EER | seen 1-shot | seen 5-shot | seen AUC | seen EER | train s |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ...results.map((r) => `| ${r.tower} | ${r.loss}${r.mining && r.mining !== 'none' ? ` (${r.mining})` : ''}${r.augment ? ', augmented' : ''} | ${r.tool} | ` +
    `${pct(r.unseen.oneShot.accuracy)} ± ${pct(r.unseen.oneShot.ci95)} | ${pct(r.unseen.fiveShot.accuracy)} | ${r.unseen.auc.toFixed(3)} | ${pct(r.unseen.eer)} | ` +
    `${pct(r.seen.oneShot.accuracy)} | ${pct(r.seen.fiveShot.accuracy)} | ${r.seen.auc.toFixed(3)} | ${pct(r.seen.eer)} | ${r.seconds.toFixed(0)} |`)
]
console.log(lines.join('\n'))
const dir = join(here, 'results')
mkdirSync(dir, { recursive: true })
const date = new Date().toISOString().slice(0, 10)
const kind = digits ? 'unseen-digits' : 'unseen'
let base = join(dir, `${date}-${kind}`)
for (let n = 2; existsSync(`${base}.json`); n++) base = join(dir, `${date}-${n}-${kind}`)
const command = `node scripts/bench/unseen.mjs ${process.argv.slice(2).join(' ')}`.trim()
writeFileSync(`${base}.json`, `${JSON.stringify({ date: new Date().toISOString(), version: version().siameseTorch, command, data: data.name, perClass, epochs, threads, episodes, results }, null, 2)}\n`)
writeFileSync(`${base}.md`, `${lines.join('\n')}\n`)
console.log(`written ${base}.json and .md`)
