// TypeScript as CommonJS, run with ts-node: npx ts-node quickstart.ts
import { train, datasets, type EpochMetrics } from 'siamese-torch'

async function main (): Promise<void> {
  const { train: digits, test } = await datasets.embedded()
  // A quick run on every fifth digit; pass `data: 'embedded'` (the default) to use them all.
  const everyFifth = (set: typeof digits): typeof digits => {
    const keep = Array.from({ length: Math.floor(set.count / 5) }, (_, i) => i * 5)
    const images = new Uint8Array(keep.length * 784)
    keep.forEach((k, j) => images.set(set.images.subarray(k * 784, (k + 1) * 784), j * 784))
    return datasets.fromArrays({ images, labels: keep.map((k) => set.labels[k] as number), width: 28, height: 28 })
  }
  const { model, history } = await train({
    data: { train: everyFifth(digits), test: everyFifth(test) },
    epochs: 1,
    onProgress: (event) => { if (event.type === 'epoch') console.log(`epoch ${event.epoch}: ${(event.testAccuracy * 100).toFixed(1)}%`) }
  })
  const last: EpochMetrics | undefined = history.at(-1)
  const pSame: number = await model.predict(test.images.subarray(0, 784), test.images.subarray(784, 1568))
  console.log(JSON.stringify({ accuracy: last?.testAccuracy, pSame }))
  model.dispose()
}

main().catch((err) => { console.error(err); process.exit(1) })
