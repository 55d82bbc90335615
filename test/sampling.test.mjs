// Pair and triplet samplers: exact schemes, reproducibility, and the balance of every sampler.
import t from 'tap'
import { datasets } from 'siamese-torch'

const { train, test } = await datasets.embedded()
const classOf = (i) => train.labels[i]
const eq = (a, b) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))

// Position of every image within its class, in set order (what "the j-th image of c" means).
const rank = new Int32Array(train.count)
const members = train.classes.map(() => [])
for (let i = 0; i < train.count; i++) {
  rank[i] = members[classOf(i)].length
  members[classOf(i)].push(i)
}

t.test("'reference' is exactly the recipe's scheme", async (t) => {
  const r = datasets.triplets(train, { scheme: 'reference', seed: 3 })
  t.equal(r.anchor.length, 5000, '500 anchors a class, 10 classes')
  let offsetSum = 0
  let selfPairs = 0
  const offsets = new Set()
  const negativeClasses = train.classes.map(() => new Array(10).fill(0))
  for (let i = 0; i < 5000; i++) {
    const c = Math.floor(i / 500)
    const j = i % 500
    const a = r.anchor[i]
    const p = r.positive[i]
    const n = r.negative[i]
    if (classOf(a) !== c || rank[a] !== j) t.fail(`anchor ${i} is not image ${j} of class ${c}`)
    const offset = rank[p] - rank[a]
    if (classOf(p) !== c || offset < 0 || offset > 100) t.fail(`positive ${i} is not j + 0..100 of class ${c}`)
    if (classOf(n) === c || rank[n] !== j) t.fail(`negative ${i} is not image ${j} of another class`)
    offsets.add(offset)
    offsetSum += offset
    if (offset === 0) selfPairs++
    negativeClasses[c][classOf(n)]++
  }
  t.equal(offsets.size, 101, 'every offset 0..100 occurs')
  t.ok(Math.abs(offsetSum / 5000 - 50) < 2, `offsets average ${offsetSum / 5000}, about 50`)
  t.ok(selfPairs > 20 && selfPairs < 80, `r = 0 pairs an image with itself, as the original (${selfPairs} of 5000)`)
  for (let c = 0; c < 10; c++) {
    t.equal(negativeClasses[c][c], 0)
    const others = negativeClasses[c].filter((_, k) => k !== c)
    t.ok(Math.min(...others) > 30 && Math.max(...others) < 85, `class ${c}: negatives spread over the 9 others (${others})`)
  }
  const again = datasets.triplets(train, { scheme: 'reference', seed: 3, epoch: 5 })
  t.ok(eq(again.anchor, r.anchor) && eq(again.positive, r.positive) && eq(again.negative, r.negative),
    'drawn once: the same for every epoch')
  t.notOk(eq(datasets.triplets(train, { scheme: 'reference', seed: 4 }).positive, r.positive), 'another seed, other draws')
})

t.test("'reference' refuses sets too small for it", async (t) => {
  t.throws(() => datasets.triplets(test, { scheme: 'reference' }), {
    code: 'ERR_INVALID_ARG',
    message: "the 'reference' pair scheme needs at least 600 images in every class (500 anchors, positives up to 100 further); class 0 has 200"
  })
})

t.test("'balanced': every image an anchor once an epoch, positives never the anchor, balanced classes", async (t) => {
  const b = datasets.triplets(train, { scheme: 'balanced', seed: 11, epoch: 2 })
  t.equal(b.anchor.length, train.count)
  t.same([...b.anchor].sort((x, y) => x - y), Array.from({ length: train.count }, (_, i) => i), 'each image exactly once')
  const negativeCount = new Array(10).fill(0)
  const perClassNegatives = train.classes.map(() => new Array(10).fill(0))
  for (let i = 0; i < b.anchor.length; i++) {
    const a = b.anchor[i]
    if (b.positive[i] === a) t.fail(`triplet ${i}: positive is the anchor`)
    if (classOf(b.positive[i]) !== classOf(a)) t.fail(`triplet ${i}: positive of another class`)
    if (classOf(b.negative[i]) === classOf(a)) t.fail(`triplet ${i}: negative of the same class`)
    negativeCount[classOf(b.negative[i])]++
    perClassNegatives[classOf(a)][classOf(b.negative[i])]++
  }
  // Negative classes are uniform over the 9 others: expected 1/9 of each class's anchors.
  for (let c = 0; c < 10; c++) {
    const n = members[c].length
    for (let k = 0; k < 10; k++) {
      if (k === c) continue
      const seen = perClassNegatives[c][k]
      const expected = n / 9
      t.ok(Math.abs(seen - expected) < 5 * Math.sqrt(expected), `anchors of ${c}, negatives of ${k}: ${seen}, expected ${expected.toFixed(0)}`)
    }
  }
  const sorted = [...b.anchor.slice(0, 50)]
  t.notSame(sorted, [...sorted].sort((x, y) => x - y), 'anchors come in a shuffled order')

  const same = datasets.triplets(train, { scheme: 'balanced', seed: 11, epoch: 2 })
  t.ok(eq(same.anchor, b.anchor) && eq(same.positive, b.positive) && eq(same.negative, b.negative), 'same seed and epoch, same triplets')
  const next = datasets.triplets(train, { scheme: 'balanced', seed: 11, epoch: 3 })
  t.notOk(eq(next.anchor, b.anchor), 'fresh triplets every epoch')
  t.notOk(eq(datasets.triplets(train, { scheme: 'balanced', seed: 12, epoch: 2 }).anchor, b.anchor), 'another seed, other triplets')
})

t.test('pairs: one same and one different pair per triplet', async (t) => {
  const p = datasets.pairs(train, { seed: 1 })
  t.equal(p.left.length, 2 * train.count)
  let same = 0
  for (let i = 0; i < p.left.length; i++) {
    const really = classOf(p.left[i]) === classOf(p.right[i]) ? 1 : 0
    if (really !== p.same[i]) t.fail(`pair ${i}: target ${p.same[i]} but classes say ${really}`)
    same += p.same[i]
  }
  t.equal(same, train.count, 'exactly half the pairs are "same"')
})

t.test('test pairs are fixed', async (t) => {
  const a = datasets.testPairs(test)
  const b = datasets.testPairs(test)
  t.ok(eq(a.left, b.left) && eq(a.right, b.right) && eq(a.same, b.same))
  t.equal(a.left.length, 2 * test.count)
  t.notOk(eq(datasets.testPairs(test, { seed: 1 }).right, a.right), 'a different seed gives another fixed set')
  // Pinned values: a change here means results are no longer comparable with earlier runs.
  t.same([...a.left.subarray(0, 6)], [829, 829, 38, 38, 1128, 1128])
  t.same([...a.right.subarray(0, 6)], [899, 187, 26, 573, 1192, 1798])
})

t.test('class-balanced batches: P distinct classes, K images each', async (t) => {
  const batches = datasets.classBalancedBatches(train, { classesPerBatch: 8, imagesPerClass: 4, seed: 5 })
  t.equal(batches.length, Math.floor(train.count / 32))
  const used = new Array(10).fill(0)
  for (const batch of batches) {
    t.equal(batch.length, 32)
    const byClass = new Map()
    for (const i of batch) byClass.set(classOf(i), (byClass.get(classOf(i)) ?? 0) + 1)
    if (byClass.size !== 8 || [...byClass.values()].some((k) => k !== 4)) t.fail(`batch is not 8 classes x 4: ${[...byClass]}`)
    for (const c of byClass.keys()) used[c]++
  }
  const expected = (batches.length * 8) / 10
  for (let c = 0; c < 10; c++) t.ok(Math.abs(used[c] - expected) < 5 * Math.sqrt(expected), `class ${c} in ${used[c]} batches, expected ${expected}`)
  const again = datasets.classBalancedBatches(train, { classesPerBatch: 8, imagesPerClass: 4, seed: 5 })
  t.ok(batches.every((b, i) => eq(b, again[i])), 'reproducible')
  t.throws(() => datasets.classBalancedBatches(train, { classesPerBatch: 11, imagesPerClass: 4 }), {
    code: 'ERR_INVALID_ARG', message: 'Expected an integer from 2 to 10 for classesPerBatch but received number 11'
  })
})

t.test('small and awkward sets', async (t) => {
  const tiny = datasets.fromArrays({ images: new Uint8Array(5), labels: [0, 0, 1, 2, 2], width: 1, height: 1 })
  const b = datasets.triplets(tiny, { seed: 1 })
  t.same([...b.anchor].sort(), [0, 1, 3, 4], 'a class with one image gives no anchor, but can be a negative')
  const single = datasets.fromArrays({ images: new Uint8Array(3), labels: [0, 0, 0], width: 1, height: 1 })
  t.throws(() => datasets.triplets(single), { code: 'ERR_INVALID_ARG', message: 'pairs need images of at least two classes' })
  t.throws(() => datasets.triplets(tiny, { scheme: 'fancy' }), {
    code: 'ERR_INVALID_ARG', message: 'Expected one of \'reference\', \'balanced\' for scheme but received string "fancy"'
  })
  t.throws(() => datasets.triplets(tiny, { seed: -1 }), { code: 'ERR_INVALID_ARG' })
  t.throws(() => datasets.triplets({ ...tiny, labels: [0, 0, 1, 2, 2] }), {
    code: 'ERR_INVALID_ARG', message: 'Expected an Int32Array of 5 labels for set.labels but received an array of length 5'
  })
})
