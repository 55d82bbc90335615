// Classes never seen in training: class-disjoint splits, training that says it tests on them,
// N-way K-shot episodes, verification and retrieval metrics, and K-shot classification by the
// same rules.
import { readFileSync } from 'node:fs'

import t from 'tap'

import { createModel, datasets, train } from 'siamese-torch'

import { image, smallDigits, strided } from './helpers/small-data.mjs'

const digits = await datasets.embedded()
const small = await smallDigits()
const UNSEEN = ['6', '7', '8', '9']

/** The bytes of image i of a set. */
function pixels (set, i) {
  const size = set.width * set.height * (set.channels ?? 1)
  return set.images.subarray(i * size, (i + 1) * size)
}

t.test('splitClasses: whole classes on each side, renumbered, the images as they were', async (t) => {
  const split = datasets.splitClasses(digits, { test: UNSEEN })
  t.same(split.train.classes, ['0', '1', '2', '3', '4', '5'])
  t.same(split.test.classes, UNSEEN)
  t.match(split.name, /trained on 6 classes, tested on 4 others/)
  t.equal(split.source, undefined, 'a split built in memory has no source to read again')
  // From a DataSplit: training classes from its training split, held-out ones from its test split.
  const trainCount = [...digits.train.labels].filter((l) => l < 6).length
  const testCount = [...digits.test.labels].filter((l) => l >= 6).length
  t.equal(split.train.count, trainCount)
  t.equal(split.test.count, testCount)
  let j = 0
  let same = true
  for (let i = 0; i < digits.test.count; i++) {
    if (digits.test.labels[i] < 6) continue
    same &&= split.test.labels[j] === digits.test.labels[i] - 6 && Buffer.compare(pixels(split.test, j), pixels(digits.test, i)) === 0
    j++
  }
  t.ok(same, 'every held-out test image, in order, relabelled over the held-out classes')

  // One labelled set: each class wholly on one side.
  const one = datasets.splitClasses(small.train, { test: ['0', '5'] })
  t.same(one.test.classes, ['0', '5'])
  t.equal(one.train.count + one.test.count, small.train.count)

  // A fraction, drawn with the seed.
  const a = datasets.splitClasses(digits, { test: 0.3, seed: 1 })
  t.equal(a.test.classes.length, 3)
  t.same(datasets.splitClasses(digits, { test: 0.3, seed: 1 }).test.classes, a.test.classes, 'seeded: the same classes again')
  const draws = new Set([1, 2, 3, 4, 5, 6].map((seed) => datasets.splitClasses(digits, { test: 0.3, seed }).test.classes.join()))
  t.ok(draws.size > 1, `other seeds, other classes (${[...draws].join(' | ')})`)
  t.equal(datasets.splitClasses(digits, { test: 0.01 }).test.classes.length, 1, 'at least one class held out')
  t.equal(datasets.splitClasses(digits, { test: 0.99 }).train.classes.length, 1, 'and at least one trained')

  for (const [test, why] of [[['6', 'x'], 'an unknown class'], [digits.train.classes, 'every class'], [[], 'no class'], [0, 'a fraction of 0'], [1, 'a fraction of 1'], ['6', 'a string']]) {
    t.throws(() => datasets.splitClasses(digits, { test }), { code: 'ERR_INVALID_ARG' }, `${why} refused`)
  }
  t.throws(() => datasets.splitClasses(digits, { test: UNSEEN, sed: 1 }), { code: 'ERR_INVALID_ARG' }, 'an unknown option refused')
})

t.test('training on a split tests on the unseen classes, and says so', async (t) => {
  const split = datasets.splitClasses(small, { test: UNSEEN })
  const events = []
  // Contrastive: after so little training, pair-ce's head is no better than chance on digits it
  // never saw (docs/performance.md); the embeddings a distance loss trains already are.
  const { model, history } = await train({
    data: split, epochs: 1, seed: 2, threads: 1, loss: 'contrastive', onProgress: (e) => { if (e.type === 'epoch') events.push(e) }
  })
  t.teardown(() => model.dispose())
  t.equal(events.length, 1)
  t.equal(events[0].testClasses, 4)
  t.equal(events[0].unseenClasses, 4, 'the epoch event: every test class unseen')
  t.equal(history[0].unseenClasses, 4, 'and the history')
  t.same(model.classes, ['0', '1', '2', '3', '4', '5'], 'the model knows the classes it trained on')
  t.ok(history[0].auc > 0.5, `pair AUC on unseen digits ${history[0].auc}`)

  const m = await model.evaluate(split.test, { ways: 4, shots: 1, episodes: 300, seed: 4 })
  t.equal(m.classes, 4)
  t.equal(m.unseenClasses, 4, 'evaluate: every class unseen')
  t.same(Object.keys(m.episodes).sort(), ['accuracy', 'ci95', 'episodes', 'queries', 'shots', 'ways', 'within'])
  t.equal(m.episodes.ways, 4)
  t.ok(m.episodes.accuracy > 0.3, `4-way one-shot on unseen digits: ${m.episodes.accuracy}`)
  t.ok(m.episodes.ci95 > 0 && m.episodes.ci95 < 0.1, `with its interval ${m.episodes.ci95}`)
  t.equal(m.oneShotWays, 4)
  t.equal(m.oneShotAccuracy, m.episodes.accuracy, 'oneShotAccuracy: the one-shot episodes')
  const five = await model.evaluate(split.test, { ways: 4, shots: 5, queries: 2, episodes: 300, seed: 4 })
  t.equal(five.oneShotAccuracy, null, 'five-shot is not one-shot')
  t.ok(five.episodes.accuracy > m.episodes.accuracy, `5-shot (${five.episodes.accuracy}) beats 1-shot (${m.episodes.accuracy})`)
  const trained = await model.evaluate(small.test, { ways: 4, episodes: 50 })
  t.equal(trained.unseenClasses, 4, 'the digits 6..9 of the whole set: unseen; 0..5: seen')
  t.equal(trained.classes, 10)
})

t.test('evaluate: verification and retrieval metrics, seeded episodes', async (t) => {
  const { model } = await train({ data: small, epochs: 1, seed: 3, threads: 1, loss: 'contrastive' })
  t.teardown(() => model.dispose())
  const set = small.test
  const m = await model.evaluate(set, { ways: 5, episodes: 200, seed: 1 })
  t.equal(m.unseenClasses, 0)
  const fixed = m.verification.pairs
  t.equal(fixed.positives + fixed.negatives, m.pairs, 'the fixed test pairs')
  t.ok(Math.abs(fixed.auc - m.auc) < 1e-3, `their AUC (${fixed.auc}) is the pair AUC (${m.auc})`)
  t.ok(fixed.eer > 0 && fixed.eer < 0.5 && fixed.eerThreshold > 0, `EER ${fixed.eer} at distance ${fixed.eerThreshold}`)
  t.same(fixed.tarAtFar.map((x) => x.far), [0.1, 0.01, 0.001])
  t.equal(fixed.tarAtFar[2].tar, null, `${fixed.negatives} different pairs cannot tell FAR 0.001`)
  t.ok(fixed.tarAtFar[0].tar > 0 && fixed.tarAtFar[0].tar <= 1)
  const { far, tar, threshold } = fixed.roc
  t.ok(far.length === tar.length && tar.length === threshold.length && far.length > 10 && far.length <= 600, `${far.length} ROC points`)
  t.same([far[0], tar[0], far.at(-1), tar.at(-1)], [0, 0, 1, 1], 'from nothing accepted to everything')
  t.ok(far.every((x, i) => i === 0 || x >= far[i - 1]) && threshold.every((x, i) => i === 0 || x >= threshold[i - 1]),
    'rates rise as the distance threshold does')

  const all = m.verification.allPairs
  const n = set.count
  t.equal(all.positives + all.negatives, n * (n - 1) / 2, 'all pairs of the set')
  const counts = datasets.classCounts(set)
  t.equal(all.positives, counts.reduce((s, c) => s + c * (c - 1) / 2, 0), 'same pairs: within each class')
  t.type(all.tarAtFar[2].tar, 'number', `${all.negatives} different pairs tell FAR 0.001`)
  t.ok(Math.abs(all.auc - fixed.auc) < 0.1, `all-pairs AUC ${all.auc} near the fixed pairs' ${fixed.auc}`)

  t.equal(m.retrieval.queries, n)
  for (const k of ['precisionAt1', 'rPrecision', 'mapAtR']) t.ok(m.retrieval[k] > 0.1 && m.retrieval[k] <= 1, `${k} ${m.retrieval[k]}`)
  t.ok(m.retrieval.mapAtR <= m.retrieval.rPrecision + 1e-9, 'MAP@R <= R-precision')

  const again = await model.evaluate(set, { ways: 5, episodes: 200, seed: 1 })
  t.same(again, m, 'the same options: the same metrics')
  const other = await model.evaluate(set, { ways: 5, episodes: 200, seed: 2 })
  t.not(other.episodes.accuracy, m.episodes.accuracy, 'another seed: other episodes')
  const lean = await model.evaluate(set, { ways: 0, allPairs: false, retrieval: false })
  t.equal(lean.episodes, null)
  t.equal(lean.verification.allPairs, null)
  t.equal(lean.retrieval, null)
  t.equal(lean.auc, m.auc, 'the fixed pairs do not depend on the rest')

  for (const [options, why] of [[{ shots: 0 }, 'zero shots'], [{ queries: 0 }, 'zero queries'], [{ within: 'world' }, 'an unknown scope'], [{ allPairs: 'yes' }, 'a string for a boolean'],
    [{ ways: 10, shots: 30 }, 'more shots than a class has'], [{ ways: 10, shots: 100, queries: 100, episodes: 100000 }, 'too many images drawn']]) {
    await t.rejects(model.evaluate(set, options), { code: 'ERR_INVALID_ARG' }, `${why} refused`)
  }
})

t.test('episodes within an alphabet', async (t) => {
  // Classes named alphabet/character: alphabet "a" has 2 characters, "b" 3.
  const base = strided(digits.test, 4)
  const names = ['a/0', 'a/1', 'b/2', 'b/3', 'b/4']
  const keep = [...base.labels].map((l, i) => l < 5 ? i : -1).filter((i) => i >= 0)
  const set = datasets.fromArrays({
    images: Buffer.concat(keep.map((i) => image(base, i))), labels: keep.map((i) => base.labels[i]), width: 28, height: 28, classes: names
  })
  const model = await createModel({ seed: 1 })
  t.teardown(() => model.dispose())
  const m = await model.evaluate(set, { ways: 3, within: 'alphabet', episodes: 50 })
  t.equal(m.episodes.within, 'alphabet')
  await t.rejects(model.evaluate(set, { ways: 4, within: 'alphabet', episodes: 50 }), { code: 'ERR_INVALID_ARG', message: /in one group/ },
    'no alphabet has 4 characters')
  t.ok((await model.evaluate(set, { ways: 4, episodes: 50 })).episodes.accuracy >= 0, 'across the set: 5 classes')
  await t.rejects(model.evaluate(small.test, { ways: 3, within: 'alphabet' }), { code: 'ERR_INVALID_ARG', message: /alphabet\/character/ },
    'classes without an alphabet refused')
})

t.test('classify: the rules of the episodes', async (t) => {
  const set = small.test
  const byClass = (c, k) => [...set.labels].map((l, i) => l === c ? i : -1).filter((i) => i >= 0).slice(0, k)
  const support = { images: [], labels: [] }
  for (const c of [0, 1, 2]) {
    for (const i of byClass(c, 3)) {
      support.images.push({ data: image(set, i), width: 28, height: 28, channels: 1 })
      support.labels.push(set.classes[c])
    }
  }
  const query = { data: image(set, byClass(1, 4)[3]), width: 28, height: 28, channels: 1 }

  const pairCe = await createModel({ seed: 5 })
  t.teardown(() => pairCe.dispose())
  const [verdict] = await pairCe.classify(query, support)
  for (let c = 0; c < 3; c++) {
    const ps = await pairCe.predict(support.images.slice(3 * c, 3 * c + 3).map(() => query), support.images.slice(3 * c, 3 * c + 3))
    const mean = ps.reduce((s, p) => s + p, 0) / 3
    t.ok(Math.abs(verdict.scores[c] - mean) < 1e-5, `pair-ce: class ${c} scores the mean P(same) of its shots (${verdict.scores[c]} vs ${mean})`)
  }

  const contrastive = await createModel({ seed: 5, loss: 'contrastive' })
  t.teardown(() => contrastive.dispose())
  const [d] = await contrastive.classify(query, support)
  const [q] = await contrastive.embed([query])
  const e = await contrastive.embed(support.images)
  const distances = [0, 1, 2].map((c) => {
    const prototype = new Float32Array(q.length)
    for (let k = 0; k < 3; k++) e[3 * c + k].forEach((v, j) => { prototype[j] += v / 3 })
    return Math.hypot(...prototype.map((v, j) => v - q[j]))
  })
  const nearest = distances.indexOf(Math.min(...distances))
  t.equal(d.label, nearest, `distance losses: the nearest prototype (distances ${distances.map((x) => x.toFixed(3)).join(', ')})`)
  t.ok(d.scores.every((s, c) => c === nearest || s < d.scores[nearest]), 'scores fall with the distance to the prototype')
})

t.test('all pairs of 10,000 images, in bounded memory', async (t) => {
  const big = datasets.fromArrays({
    images: Buffer.concat([digits.train.images, digits.test.images]).subarray(0, 10000 * 784),
    labels: [...digits.train.labels, ...digits.test.labels].slice(0, 10000),
    width: 28,
    height: 28,
    classes: digits.train.classes
  })
  const model = await createModel({ seed: 1, loss: 'contrastive' })
  t.teardown(() => model.dispose())
  const peak = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024
  // Warm up: the network's first pass and the allocator's caches.
  await model.evaluate(strided(big, 10), { ways: 0 })
  const before = peak()
  const m = await model.evaluate(big, { ways: 0 })
  const grown = peak() - before
  t.equal(m.verification.allPairs.positives + m.verification.allPairs.negatives, 10000 * 9999 / 2, 'every one of the 49,995,000 pairs')
  t.equal(m.retrieval.queries, 10000)
  // 10,000 x 10,000 float distances alone would be 400 MB.
  t.ok(grown < 250 * 1024 * 1024, `peak memory grew by ${(grown / 1048576).toFixed(0)} MB`)
})
