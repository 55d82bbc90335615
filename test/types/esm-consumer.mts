// How an ES module user sees the published types (resolved through package.json "exports").
import { version, SiameseTorchError, type VersionInfo, type ErrorCode, type LibtorchSource } from 'siamese-torch'
import { expectTrue, type Equal, type IsAny } from './assert.js'

const v: VersionInfo = version()
expectTrue<Equal<typeof v.siameseTorch, string>>()
expectTrue<Equal<typeof v.cuda, boolean>>()
expectTrue<Equal<typeof v.cudaDevices, number>>()
expectTrue<Equal<typeof v.libtorchSource, LibtorchSource>>()
expectTrue<Equal<IsAny<VersionInfo[keyof VersionInfo]>, false>>()
expectTrue<Equal<IsAny<ReturnType<typeof version>>, false>>()

// @ts-expect-error cudaDevices is a count, not a list
v.cudaDevices.map((d: unknown) => d)

try {
  version()
} catch (err) {
  if (err instanceof SiameseTorchError) {
    const code: ErrorCode = err.code
    const path: string | undefined = err.path
    console.log(code, path)
    // @ts-expect-error code is one of the documented codes
    const bogus: typeof err.code = 'ERR_NOT_A_CODE'
    console.log(bogus)
  }
}

// @ts-expect-error a code must be one of ErrorCode
new SiameseTorchError('x', 'ERR_WHATEVER')

// Training and models.
import { train, createModel, loadModel, SiameseModel, datasets, type EpochMetrics, type ProgressEvent, type Metrics, type Classification, type ModelConfig, type TrainOptions } from 'siamese-torch'

async function usage (): Promise<void> {
  const options: TrainOptions = { data: 'embedded', epochs: 2, loss: 'triplet', mining: 'semi-hard', device: 'cuda:0' }
  const { model, history } = await train(options)
  expectTrue<Equal<typeof model, SiameseModel>>()
  expectTrue<Equal<typeof history, EpochMetrics[]>>()
  const one: number = await model.predict(new Uint8Array(784), 'b.png')
  const many: number[] = await model.predict([Buffer.alloc(1)], [new Float32Array(784)])
  // @ts-expect-error one image against a list
  await model.predict(new Uint8Array(784), [new Uint8Array(784)])
  const embeddings: Float32Array[] = await model.embed(['a.png'])
  const metrics: Metrics = await model.evaluate(await datasets.embedded(), { ways: 5 })
  const verdicts: Classification[] = await model.classify('q.png', { images: ['a.png'], labels: ['cat'] })
  const config: ModelConfig = model.config
  expectTrue<Equal<IsAny<typeof config.loss>, false>>()
  await model.save('m.safetensors')
  const loaded = await loadModel('m.safetensors', { device: 'cpu' })
  const fresh = await createModel({ loss: 'contrastive', margin: 2 })
  await fresh.train({ epochs: 1, onProgress: (e: ProgressEvent) => { if (e.type === 'epoch') console.log(e.testAccuracy) } })
  // @ts-expect-error model.train does not rebuild the model
  await fresh.train({ embeddingSize: 64 })
  // @ts-expect-error unknown device
  await train({ device: 'gpu' })
  console.log(one, many, embeddings, metrics, verdicts, loaded)
  model.dispose()
}
void usage
