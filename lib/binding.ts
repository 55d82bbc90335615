// Loads the native addon and types it. The only module that touches the raw addon object. It
// describes the addon's wire types itself, from the contract's enums only: every module above it
// converts to and from these.
import { existsSync } from 'node:fs'
import { join, resolve, sep } from 'node:path'

import type { Channels, Loss, LrSchedule, Mining, Optimizer, PairScheme, Precision, Tower, WeightInit } from './contract.js'
import type { NativeDistributed } from './distributed.js'
import { SiameseTorchError } from './errors.js'

/** A GPU as the addon reports it. */
export interface NativeCudaDevice {
  index: number
  name: string
  totalMemory: number
}

/** What `version()` reads from the addon. */
export interface NativeVersion {
  libtorch: string
  libtorchSource: string
  libtorchLibrary: string
  cudaBuild: boolean
  cuda: boolean
  cudaDevices: NativeCudaDevice[]
  cpus: number
  threads: number
  threadsBasis: string
  bf16Cpu: boolean
  distributed: string[]
}

/** Both files of one IDX split, as read natively: the pixels stay native (uint8 [count, height, width, 1]). */
export interface NativeIdxSplit {
  images: NativePixels
  labels: Buffer
  count: number
  width: number
  height: number
}

/** Triplets of image indices (anchor, same-class positive, other-class negative). */
export interface NativeTriplets {
  anchor: Int32Array
  positive: Int32Array
  negative: Int32Array
}

/** A model's configuration, as core::ModelConfig holds it. */
export interface NativeModelConfig {
  tower: Tower
  width: number
  height: number
  channels: Channels
  embeddingSize: number
  /** One value a channel. */
  mean: number[]
  std: number[]
  loss: Loss
  margin: number
  threshold: number
}

/** A labelled set's pixels held natively (native/addon/pixels.h). */
export interface NativePixels {
  /** Copies one image in, at `index`; refused once frozen. */
  set(index: number, image: Uint8Array): void
  /** A copy of images [start, start + count). */
  read(start: number, count: number): Uint8Array
  /** No more writes: from now on the addon may read it from other threads. */
  freeze(): void
  /** Per-channel mean and std of pixel / 255, as datasets.pixelStats computes them. */
  stats(): { mean: number[], std: number[] }
  /** A new frozen store of the images at `indices`, in that order, copied natively. */
  select(indices: Int32Array): NativePixels
}

/** A labelled set as the addon reads it. */
export interface NativeImageData {
  /** The pixels in JavaScript, or (with `pixels`) undefined. */
  images: Uint8Array | undefined
  /** The pixels held natively, shared rather than copied. */
  pixels: NativePixels | undefined
  labels: Int32Array
  count: number
  width: number
  height: number
  channels: number
  numClasses: number
}

/** core::TrainConfig, with the epoch to start after and the data's expected fingerprint. */
export interface NativeTrainConfig {
  epochs: number
  batchSize: number
  seed: number
  pairs: PairScheme
  mining: Mining
  optimizer: Optimizer
  lr: number
  lrSchedule: LrSchedule
  warmup: number
  weightDecay: number
  momentum: number
  saveEvery: number
  outDir: string
  /** Undefined: the model's own. */
  precision: Precision | undefined
  threads: number
  testSeed: number
  startEpoch: number
  /** Resume: continue from the optimiser state of the checkpoint this model was loaded from. */
  resume: boolean
  /** Resume: the fingerprint the checkpoint recorded for its data ('' when it has none). */
  expectedDataFingerprint: string
  /** Tower stages trained as they are (0: none). */
  freezeStages: number
  augment: NativeAugment
  /** Capture the triplet step as a CUDA graph (a CUDA device only). */
  cudaGraph: boolean
  /** A rank of a distributed run; absent: this process alone. */
  distributed?: NativeDistributed
}

/** What a training run resolves with. */
export interface NativeTrainingResult {
  history: NativeEpochMetrics[]
  rank: number
  worldSize: number
  /** Seconds the steps waited for the gradients' all-reduce after their backward pass. */
  allReduceWaitSeconds: number
}

/** core::AugmentConfig: every field at its identity for no augmentation. */
export interface NativeAugment {
  cropScaleMin: number
  cropScaleMax: number
  ratioMin: number
  ratioMax: number
  flip: boolean
  rotate: number
  translate: number
  scaleMin: number
  scaleMax: number
  shear: number
  brightness: number
  contrast: number
}

/** core::EpochMetrics. */
export interface NativeEpochMetrics {
  epoch: number
  trainLoss: number
  trainAccuracy: number
  testLoss: number
  testAccuracy: number
  auc: number
  threshold: number
  seconds: number
  pairsPerSecond: number
}

export type NativeTrainingEvent =
  | { type: 'batch', epoch: number, epochs: number, batch: number, batches: number, loss: number, lr: number, pairsPerSecond: number, etaSeconds: number }
  | ({ type: 'epoch' } & NativeEpochMetrics)
  | { type: 'file', kind: 'checkpoint' | 'model', path: string }

/** core::SetEvaluation: pair metrics on fixed test pairs and N-way one-shot accuracy. */
export interface NativeEvaluation {
  loss: number
  accuracy: number
  auc: number
  threshold: number
  bestAccuracy: number
  pairs: number
  episodes: { ways: number, shots: number, queries: number, episodes: number, accuracy: number, ci95: number } | null
  verification: { pairs: NativeVerification, allPairs: NativeVerification | null }
  retrieval: { queries: number, precisionAt1: number, rPrecision: number, mapAtR: number } | null
}

/** Verification metrics as the addon sends them (lib/model.ts's Verification documents them). */
export interface NativeVerification {
  positives: number
  negatives: number
  auc: number
  eer: number
  eerThreshold: number
  tarAtFar: Array<{ far: number, tar: number | null }>
  roc: { far: number[], tar: number[], threshold: number[] }
}

/** What evaluate() is asked for (native/core/evaluate.h's EvaluationOptions). */
export interface NativeEvaluationOptions {
  testSeed: number
  ways: number
  shots: number
  queries: number
  episodes: number
  seed: number
  /** One group a class (episodes draw within one), or empty. */
  classGroups: number[]
  allPairs: boolean
  retrieval: boolean
}

/** The addon's model object. */
export interface NativeModel {
  info(): { config: NativeModelConfig, device: string, threads: number, precision: Precision, predictBatch: number, metadata: Record<string, string> }
  /** Throws ERR_UNSUPPORTED where this machine cannot compute in it; ERR_BUSY while training. */
  setPrecision(precision: Precision): void
  /** The most pairs concurrent predictPairs calls share a forward pass with (0: each its own; native/addon/batcher.h). */
  setPredictBatch(maxPairs: number): void
  embed(images: Uint8Array, count: number): Promise<Float32Array>
  predictPairs(left: Uint8Array, right: Uint8Array, count: number): Promise<Float32Array>
  /** P(same) of each pair, then the embeddings' distance of each: 2 * count values. */
  comparePairs(left: Uint8Array, right: Uint8Array, count: number): Promise<Float32Array>
  classScores(queries: Uint8Array, queryCount: number, support: Uint8Array, supportCount: number,
    supportLabels: Int32Array, numClasses: number): Promise<Float32Array>
  evaluate(set: NativeImageData, options: NativeEvaluationOptions): Promise<NativeEvaluation>
  save(path: string): Promise<void>
  setMetadata(metadata: Record<string, string>): void
  train(train: NativeImageData, test: NativeImageData, config: NativeTrainConfig,
    onEvent: (event: NativeTrainingEvent) => void): Promise<NativeTrainingResult>
  stopTraining(): void
  dispose(): void
  /** Each query's k nearest rows of `index` (fewer when it has fewer), best first: [Q, k] row-major. */
  searchIndex(index: NativeIndex, queries: Float32Array, k: number): Promise<NativeNeighbours>
  /** 16 hex digits that change when anything deciding the embeddings does. */
  fingerprint(): Promise<string>
  /** The shared forward passes of predictPairs/comparePairs calls so far, and the calls waiting now. */
  batchStats(): NativeBatchStats
}

/** The caching CPU allocator's counters (native/core/cpu_allocator.h). */
export interface NativeCpuMemory {
  cachingAllocator: boolean
  liveBytes: number
  idleBytes: number
  highWaterBytes: number
  hits: number
  misses: number
}

/** The choices and defaults of native/core/contract.h, for the test that they agree with lib/contract.ts. */
export interface NativeContract {
  losses: string[]
  minings: string[]
  optimizers: string[]
  pairSchemes: string[]
  lrSchedules: string[]
  weightInits: string[]
  towers: string[]
  defaults: Record<string, number | string>
  /** The recipe's values where the defaults differ. */
  recipe: Record<string, number | string>
}

/** The raw addon: plain values in, plain values out; every check happens before a call. */
/** A gallery's embeddings in memory (native/core/gallery_index.h), keyed by database ids. */
export interface NativeIndex {
  /** All of them, or none (an id present already is refused). */
  add(ids: Float64Array, rows: Float32Array): Promise<void>
  /** How many of those ids were present. */
  remove(ids: Float64Array): Promise<number>
  size(): number
}

export interface NativeBatchStats {
  passes: number
  pairs: number
  calls: number
  /** Passes of at most 1, 2, 4, ..., 256 pairs, then of more. */
  bySize: number[]
  waiting: number
}

export interface NativeNeighbours {
  ids: Float64Array
  pSame: Float32Array
  distance: Float32Array
  /** Neighbours a query: min(k, rows). */
  k: number
}

export interface Binding {
  init(errorClass: typeof SiameseTorchError): void
  version(): NativeVersion
  contract(): NativeContract
  cpuMemory(): NativeCpuMemory
  readIdx(imagesPath: string, labelsPath: string, numClasses: number): Promise<NativeIdxSplit>
  sampleTriplets(labels: Int32Array, numClasses: number, scheme: PairScheme, seed: number, epoch: number): NativeTriplets
  classBalancedBatches(labels: Int32Array, numClasses: number, classesPerBatch: number, imagesPerClass: number,
    seed: number, epoch: number): Int32Array
  createModel(config: NativeModelConfig, device: string, seed: number, threads: number,
    init?: { path: string, prefix: string }, weightInit?: WeightInit): Promise<NativeModel>
  NativePixels: new (count: number, height: number, width: number, channels: number) => NativePixels
  NativeIndex: new (dims: number, capacity?: number) => NativeIndex
  /** Augmented copies of uint8 images [count, height, width, channels], as the trainer draws them (seeded). */
  augmentImages(images: Uint8Array, count: number, width: number, height: number, channels: number,
    augment: NativeAugment, seed: number): Uint8Array
  /** `keepOptimizer`: hold a checkpoint's optimiser state in the model, for a resume. */
  loadModel(path: string, device: string, threads: number, keepOptimizer: boolean): Promise<{ model: NativeModel, checkpoint: boolean }>
  /** Stops every training run of this environment between two batches and waits for its thread. */
  stopAllTraining(): void
}

/** The package's root folder (dist/ sits in it). */
export const packageRoot = resolve(__dirname, '..')

const ADDON_FILE = 'siamese_torch.node'

/** Where the addon may be, in order: the build folders, or only SIAMESE_TORCH_ADDON when it is set. */
function addonCandidates (env: NodeJS.ProcessEnv = process.env): string[] {
  const candidates = [
    join(packageRoot, 'build', 'Release', ADDON_FILE),
    join(packageRoot, 'build', 'Debug', ADDON_FILE)
  ]
  const explicit = env['SIAMESE_TORCH_ADDON']
  return explicit ? [resolve(explicit)] : candidates
}

/** A short, actionable reason for a failed `require` of an addon file. */
function explainLoadFailure (file: string, err: unknown): string {
  if (!existsSync(file)) return 'not built (no such file)'
  const message = err instanceof Error ? err.message : String(err)
  const firstLine = message.split('\n')[0] ?? message
  if (/cannot open shared object file|Library not loaded|image not found/.test(message)) {
    return `a library it needs is missing, usually LibTorch moved or removed since the build (${firstLine})`
  }
  if (/undefined symbol|Symbol not found/.test(message)) {
    return `ABI mismatch: built against another LibTorch or C++ ABI than the one now found (${firstLine})`
  }
  if (/NODE_MODULE_VERSION|Module did not self-register|compiled against a different Node/.test(message)) {
    return `built for another Node.js or Electron (${firstLine})`
  }
  if (/invalid ELF header|wrong ELF class|not a mach-o/i.test(message)) {
    return `built for another platform or architecture (${firstLine})`
  }
  return firstLine
}

function rebuildCommand (): string {
  return packageRoot.split(sep).includes('node_modules')
    ? 'npm rebuild siamese-torch'
    : `npm run build:native (in ${packageRoot})`
}

function loadBinding (): Binding {
  const failures: string[] = []
  for (const file of addonCandidates()) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const binding = require(file) as Binding
      binding.init(SiameseTorchError)
      // process.exit() (and an uncaught exception) ends in the C library's exit(), which destroys
      // LibTorch's static state without tearing this environment down first: a training thread
      // still inside LibTorch would crash the process (SIGSEGV). Stop the runs first; this waits
      // for the batch in progress, and for a checkpoint being written.
      process.on('exit', () => binding.stopAllTraining())
      return binding
    } catch (err) {
      failures.push(`  - ${file}: ${explainLoadFailure(file, err)}`)
    }
  }
  throw new SiameseTorchError(
    `The siamese-torch native addon could not be loaded. Tried:\n${failures.join('\n')}\n` +
      `Rebuild it with: ${rebuildCommand()}`,
    'ERR_ADDON_LOAD'
  )
}

let cached: Binding | undefined

/** The addon, loaded on first use so that importing the package never throws. */
export function binding (): Binding {
  cached ??= loadBinding()
  return cached
}
