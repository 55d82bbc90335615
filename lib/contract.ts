// The one contract of siamese-torch's options: every choice (losses, minings, optimizers, pair
// schemes, towers) and every default, each with its check. The public option types, the checks
// in lib/, and the command line's flags, choices and help are all derived from here; nothing
// else restates a default. native/core/contract.h is the C++ side of the same list, and
// test/contract.test.mjs checks that the two agree.
import { integerIn, invalidArg } from './validate.js'

/** The losses a model can be trained with; the loss decides how pairs are scored. */
const LOSSES = ['pair-ce', 'contrastive', 'triplet'] as const
/** Online mining for the triplet loss. */
const MININGS = ['none', 'batch-hard', 'semi-hard'] as const
const OPTIMIZERS = ['adam', 'sgd'] as const
/** How training pairs are drawn (see docs/recipe.md). */
const PAIR_SCHEMES = ['reference', 'balanced'] as const
/** The network that turns an image into an embedding. */
const TOWERS = ['reference', 'conv4', 'resnet18'] as const
/** How an image of another shape is brought to the model's size. */
const FITS = ['cover', 'contain', 'fill'] as const
/** Where an N-way episode draws its classes: the whole set, or one alphabet (see `evaluationSettings.within`). */
const EPISODE_SCOPES = ['set', 'alphabet'] as const
/** Compute precision: fp32, or bfloat16 compute with fp32 weights (see `Precision`). */
const PRECISIONS = ['fp32', 'bf16'] as const
/** How the learning rate moves over a run (see `LrSchedule`). */
const LR_SCHEDULES = ['constant', 'cosine'] as const
const WEIGHT_INITS = ['torch', 'xavier'] as const
/** Data sets known by name. */
export const DATA_SOURCES = ['embedded', 'mnist', 'fashion-mnist', 'omniglot'] as const

/** `'pair-ce'`: the reference head and cross-entropy; `'contrastive'` and `'triplet'`: distances. */
export type Loss = (typeof LOSSES)[number]
export type Mining = (typeof MININGS)[number]
export type EpisodeScope = (typeof EPISODE_SCOPES)[number]
export type Optimizer = (typeof OPTIMIZERS)[number]
/**
 * How training pairs are drawn:
 * - `'reference'`: exactly the reference recipe: for each class and j in 0..499, anchor = image
 *   j of the class, positive = image j + r (r uniform in 0..100, so r = 0 pairs an image with
 *   itself, as the original does), negative = image j of a uniformly chosen other class. Drawn
 *   once; needs 600 images in every class.
 * - `'balanced'`: every image (of a class with two or more) is an anchor once an epoch, in a
 *   shuffled order; the positive is another image of its class, never itself; the negative an
 *   image of a uniformly chosen other class. Fresh every epoch.
 */
export type PairScheme = (typeof PAIR_SCHEMES)[number]
/**
 * The network that turns an image into an embedding:
 * - `'reference'`: the reference recipe's (three convolutions and a linear layer). Its first linear
 *   layer grows with the image (a 64x48 input makes a 147 MB model); above 50 million parameters
 *   it is refused.
 * - `'conv4'`: the few-shot backbone, four blocks of 3x3 conv 64, BatchNorm, ReLU, 2x2 max-pool,
 *   then a linear embedding layer.
 * - `'resnet18'`: torchvision's ResNet-18, with its parameter names, so that its weights load
 *   (`init`); torchvision's `fc` is the embedding layer.
 */
export type Tower = (typeof TOWERS)[number]
/**
 * How an image of another shape is brought to the target size:
 * - `'fill'`: stretched to it (the aspect ratio is not kept);
 * - `'contain'`: scaled to fit inside it, letterboxed with black bars;
 * - `'cover'`: scaled to cover it, the overflow cropped around the centre.
 */
export type Fit = (typeof FITS)[number]
/**
 * Compute precision of a model's forward passes, in training and inference:
 * - `'fp32'`: everything in float32 (the recipe's, bit-identical for a given thread count).
 * - `'bf16'`: convolutions, linear layers and matrix products compute in bfloat16 from float32
 *   weights (LibTorch's autocast); the weights, the optimiser, the head, the loss and every metric
 *   stay float32, and so do model files and checkpoints. Needs a CPU with AVX512_BF16 or AMX
 *   (`version().bf16`) or a CUDA GPU of compute capability 8.0 or newer; elsewhere it is refused
 *   with `ERR_UNSUPPORTED`.
 */
export type Precision = (typeof PRECISIONS)[number]
/**
 * How the learning rate moves over a run, after `warmup` epochs of linear warm-up (none by default
 * with either):
 * - `'constant'`: `lr` throughout (the reference recipe's).
 * - `'cosine'`: from `lr` down to 0 along a half cosine over the run's remaining steps (of all
 *   `epochs`: a resumed run continues the schedule it started).
 */
export type LrSchedule = (typeof LR_SCHEDULES)[number]
/**
 * How a new model's weights are drawn (seeded by `seed`):
 * - `'torch'`: LibTorch's default, PyTorch's (each layer uniform in +-1/sqrt(fan_in); torchvision's
 *   for resnet18): the reference recipe's.
 * - `'xavier'`: the tower's convolution and linear weights uniform in +-sqrt(6 / (fan_in +
 *   fan_out)), biases 0 (the head keeps PyTorch's). Measured better for the balanced scheme on
 *   the reference tower (docs/performance.md, "Accuracy per minute").
 */
export type WeightInit = (typeof WEIGHT_INITS)[number]
/** Image channels: 1 (grey) or 3 (RGB). */
export type Channels = 1 | 3
export type DataSource = (typeof DATA_SOURCES)[number]
/** Where a model runs: `'auto'` picks CUDA when this LibTorch has it and a GPU is present. */
export type Device = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`

/**
 * One option: a few words on what it is (the command line's help), its default (`undefined`:
 * none, or one that depends on the data), the allowed values of a choice, and its check.
 */
export interface Setting<T, D extends T | undefined = T | undefined> {
  readonly kind: 'choice' | 'integer' | 'number' | 'numbers' | 'boolean' | 'device' | 'stages' | 'augment'
  readonly help: string
  readonly default: D
  readonly choices?: readonly T[]
  /** Returns the value when it is valid; throws `ERR_INVALID_ARG` naming `name` when not. */
  readonly check: (value: unknown, name: string) => T
}

/** The value of option `name`: its default when not given, else the checked value. */
export function read<T, D extends T | undefined> (setting: Setting<T, D>, value: unknown, name: string): T | D {
  return value === undefined ? setting.default : setting.check(value, name)
}

/** The type of the values a setting accepts. */
type ValueOf<S> = S extends { check: (value: unknown, name: string) => infer T } ? T : never
/** The values of a table of settings, by key. */
export type Values<Table> = { [K in keyof Table]: ValueOf<Table[K]> }
/** The values of a table of settings once read: a setting without a default may stay undefined. */
export type Resolved<Table> = { [K in keyof Table]: ValueOf<Table[K]> | (Table[K] extends { default: infer D } ? D : never) }

function choice<const T extends string, D extends T | undefined> (values: readonly T[], fallback: D, help: string): Setting<T, D> {
  return {
    kind: 'choice',
    help,
    default: fallback,
    choices: values,
    check: (value, name) => {
      if (!values.includes(value as T)) throw invalidArg(name, `one of ${values.map((v) => `'${v}'`).join(', ')}`, value)
      return value as T
    }
  }
}

function integer<D extends number | undefined> (min: number, max: number, fallback: D, help: string): Setting<number, D> {
  return { kind: 'integer', help, default: fallback, check: (value, name) => integerIn(value, name, min, max) }
}

function number<D extends number | undefined> (min: number, max: number, fallback: D, help: string): Setting<number, D> {
  return {
    kind: 'number',
    help,
    default: fallback,
    check: (value, name) => {
      if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
        throw invalidArg(name, `a number from ${min} to ${max}`, value)
      }
      return value
    }
  }
}

function boolean (fallback: boolean, help: string): Setting<boolean, boolean> {
  return {
    kind: 'boolean',
    help,
    default: fallback,
    check: (value, name) => {
      if (typeof value !== 'boolean') throw invalidArg(name, 'a boolean', value)
      return value
    }
  }
}

const DEVICE = /^(auto|cpu|cuda(:\d{1,3})?)$/

/** Seeds are integers from 0 to 2^53 - 1 (exact in a double, passed to C++ as uint64). */
const seed = (help: string): Setting<number, number> => integer(0, Number.MAX_SAFE_INTEGER, 0, help)

/** Smallest image side the reference tower takes (a 7x7 conv, a 2x2 pool and two 5x5 convs). */
export const MIN_INPUT_SIDE = 24
/** Smallest image side any tower takes (conv4 and resnet18: four halvings leave one pixel). */
export const MIN_TOWER_SIDE = 16
/** Largest input side of a model (pixels). */
export const MAX_INPUT_SIDE = 512
/** The most parameters a reference tower may have (its first linear layer grows with the image). */
export const MAX_REFERENCE_PARAMETERS = 50_000_000
/** Largest image side accepted anywhere (pixels). */
export const MAX_SIDE = 4096

/** Image channels: 1 (grey) or 3 (RGB). */
function channels (help: string): Setting<Channels, undefined> {
  return {
    kind: 'integer',
    help,
    default: undefined,
    choices: [1, 3],
    check: (value, name) => {
      if (value !== 1 && value !== 3) throw invalidArg(name, '1 (grey) or 3 (RGB)', value)
      return value
    }
  }
}

/** A value per channel: one number for every channel, or an array of one number a channel. */
function perChannel (min: number, max: number, fallback: number, help: string): Setting<number | readonly number[], number> {
  const ok = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max
  return {
    kind: 'numbers',
    help,
    default: fallback,
    check: (value, name) => {
      if (ok(value)) return value
      if (Array.isArray(value) && (value.length === 1 || value.length === 3) && value.every(ok)) return [...value] as number[]
      throw invalidArg(name, `a number from ${min} to ${max}, or an array of one such number a channel`, value)
    }
  }
}

const threads = integer(1, 1024, undefined, 'LibTorch threads (default: the CPUs this process may use, shared between the runs going)')
const device: Setting<Device, 'auto'> = {
  kind: 'device',
  help: 'auto, cpu, cuda or cuda:N',
  default: 'auto',
  check: (value, name) => {
    if (typeof value !== 'string' || !DEVICE.test(value)) throw invalidArg(name, "'auto', 'cpu', 'cuda' or 'cuda:N'", value)
    return value as Device
  }
}

/**
 * Augmentation of training batches, run natively on the trainer's thread, seeded (the same seed
 * gives the same batches). Every field is off when absent. `true` stands for
 * `{ crop: [0.8, 1], flip: true, rotate: 10, brightness: 0.2, contrast: 0.2 }`.
 */
export interface AugmentOptions {
  /** Random resized crop: the share of the image's area kept, drawn in [min, max] (a number n: [n, 1]); resized back to the input. */
  crop?: number | readonly [number, number]
  /** Aspect ratio range of the crop. Default [3/4, 4/3]. */
  ratio?: readonly [number, number]
  /** Horizontal flip, half the time. */
  flip?: boolean
  /** Rotation in degrees, drawn in [-rotate, rotate] (0 to 180). */
  rotate?: number
  /** Shift, as a share of the width and height, drawn in [-translate, translate] (0 to 1). */
  translate?: number
  /** Zoom factor range, e.g. [0.9, 1.1]. */
  scale?: readonly [number, number]
  /** Horizontal shear in degrees, drawn in [-shear, shear] (0 to 89). */
  shear?: number
  /** Brightness factor drawn in [1 - b, 1 + b] (0 to 1). */
  brightness?: number
  /** Contrast factor drawn in [1 - c, 1 + c] (0 to 1). */
  contrast?: number
}

/** The augmentation `augment: true` (and the command line's `--augment`) stands for. */
export const AUGMENT_PRESET: Readonly<AugmentOptions> = Object.freeze({ crop: [0.8, 1] as const, flip: true, rotate: 10, brightness: 0.2, contrast: 0.2 })

const AUGMENT_KEYS = ['crop', 'ratio', 'flip', 'rotate', 'translate', 'scale', 'shear', 'brightness', 'contrast'] as const

/** `augment` checked: false (none), or the options with only known, valid fields. */
function checkAugment (value: unknown, name: string): false | AugmentOptions {
  if (value === false) return false
  if (value === true) return { ...AUGMENT_PRESET }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidArg(name, 'true, false or augmentation options', value)
  const o = value as Record<string, unknown>
  for (const key of Object.keys(o)) {
    if (!(AUGMENT_KEYS as readonly string[]).includes(key)) throw invalidArg(`${name}.${key}`, `one of the options ${AUGMENT_KEYS.join(', ')}`, key)
  }
  const between = (key: string, min: number, max: number): number | undefined => {
    const v = o[key]
    if (v === undefined) return undefined
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw invalidArg(`${name}.${key}`, `a number from ${min} to ${max}`, v)
    return v
  }
  const range = (key: string, min: number, max: number): [number, number] | undefined => {
    const v = o[key]
    if (v === undefined) return undefined
    const pair = typeof v === 'number' && key === 'crop' ? [v, 1] : v
    if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((x) => typeof x === 'number' && Number.isFinite(x) && x > min && x <= max) ||
      (pair[0] as number) > (pair[1] as number)) {
      throw invalidArg(`${name}.${key}`, `[low, high] with ${min} < low <= high <= ${max}${key === 'crop' ? ', or one number' : ''}`, v)
    }
    return [pair[0] as number, pair[1] as number]
  }
  if (o['flip'] !== undefined && typeof o['flip'] !== 'boolean') throw invalidArg(`${name}.flip`, 'a boolean', o['flip'])
  const out: AugmentOptions = {}
  const crop = range('crop', 0, 1)
  const ratio = range('ratio', 0, 100)
  const scale = range('scale', 0, 10)
  if (crop) out.crop = crop
  if (ratio) out.ratio = ratio
  if (o['flip'] === true) out.flip = true
  if (scale) out.scale = scale
  for (const [key, max] of [['rotate', 180], ['translate', 1], ['shear', 89], ['brightness', 1], ['contrast', 1]] as const) {
    const v = between(key, 0, max)
    if (v !== undefined && v > 0) out[key] = v
  }
  return out
}

/** What builds a model: `createModel`'s options, and those of `train` that build its model. */
export const modelSettings = {
  /** The network that turns an image into an embedding (see `Tower`). */
  tower: choice(TOWERS, 'reference', 'tower: reference (the recipe\'s), conv4 or resnet18'),
  /** Input width in pixels (images are resized to it): 16 to 512 (24 for the reference tower). */
  width: integer(MIN_TOWER_SIDE, MAX_INPUT_SIDE, 28, 'input width in pixels'),
  /** Input height in pixels. */
  height: integer(MIN_TOWER_SIDE, MAX_INPUT_SIDE, 28, 'input height in pixels'),
  /** 1 (grey) or 3 (RGB). Default: the data's (`createModel`: 1). */
  channels: channels('image channels: 1 (grey) or 3 (RGB) (default: the data\'s)'),
  /** Length of the embedding vectors. */
  embeddingSize: integer(1, 65536, 512, 'embedding size'),
  /** The loss the model is trained with; it decides how pairs are scored. */
  loss: choice(LOSSES, 'pair-ce', 'loss'),
  /** Margin of the contrastive and triplet losses. */
  margin: number(1e-6, 1e6, 1, 'margin of the contrastive and triplet losses'),
  /**
   * Pixel normalisation, per channel: (x / 255 - mean[c]) / std[c]; one number for every channel.
   * Default MNIST's (the recipe's); for an image folder, its training images' own (`DataSplit.stats`).
   */
  mean: perChannel(-1e6, 1e6, 0.1307, 'normalisation mean, or one a channel (a,b,c)'),
  /** Pixel normalisation, per channel (see `mean`). */
  std: perChannel(1e-9, 1e6, 0.3081, 'normalisation standard deviation, or one a channel (a,b,c)'),
  /** Where the model runs: `'auto'` picks CUDA when available. */
  device,
  /** Seed of the weight initialisation. */
  seed: seed('seed of the weight initialisation'),
  /** LibTorch threads for this model's work, training and inference. Default: `version().threads`, the CPUs this process may use, shared between the training runs going. */
  threads,
  /** Compute precision of its training and inference (see `Precision`). */
  precision: choice(PRECISIONS, 'fp32', 'compute precision: fp32, or bf16 (bfloat16 compute, fp32 weights; CPUs with AVX512_BF16 or AMX, CUDA)'),
  /**
   * How fresh weights are drawn (see `WeightInit`). Default `'xavier'` for the reference tower,
   * except that `train` with `pairs: 'reference'` or mining takes the recipe's `'torch'`; `'torch'`
   * for conv4 and resnet18.
   */
  weightInit: choice(WEIGHT_INITS, undefined, "weight initialisation: torch (PyTorch's default, the recipe's) or xavier (default: xavier for the reference tower, torch with --pairs reference or --mining and for conv4 and resnet18)")
} as const

/** How a model is trained: the options of `model.train` (and `train`) that are settings. */
export const trainingSettings = {
  // The defaults of `lr`, `lrSchedule`, `warmup` and `batchSize` are those measured best for the
  // balanced scheme (docs/performance.md, "Accuracy per minute"); the reference scheme and mined
  // batches take the recipe's instead (`recipeTrainingDefaults`).
  /** Training pair scheme: `'balanced'` (fresh every epoch) or `'reference'` (the recipe's). */
  pairs: choice(PAIR_SCHEMES, 'balanced', 'training pair scheme'),
  /** Online mining for the triplet loss over class-balanced batches. */
  mining: choice(MININGS, 'none', 'triplet mining (loss triplet only)'),
  /** `'adam'` (L2 weight decay added to the gradient, as PyTorch's Adam) or `'sgd'`. */
  optimizer: choice(OPTIMIZERS, 'adam', 'optimiser'),
  /** Learning rate: the peak of a schedule. Default 0.003; the recipe's 0.001 with `pairs: 'reference'` or mining. */
  lr: number(1e-12, 100, 0.003, 'learning rate, the peak of a schedule'),
  /** How the learning rate moves over the run (see `LrSchedule`). Default `'cosine'`; the recipe's `'constant'` with `pairs: 'reference'` or mining. */
  lrSchedule: choice(LR_SCHEDULES, 'cosine', 'learning-rate schedule: lr throughout, or a half cosine from lr to 0 over the run'),
  /**
   * Epochs of linear warm-up to `lr` at the start of the run (a fraction is a share of an epoch's
   * steps); 0 for none. Default 0.25; the recipe's 0 with `pairs: 'reference'` or mining.
   */
  warmup: number(0, 1_000_000, 0.25, 'epochs of linear learning-rate warm-up (0: none)'),
  /** L2 weight decay, added to the gradient. */
  weightDecay: number(0, 100, 0.0001, 'L2 weight decay'),
  /** SGD momentum. */
  momentum: number(0, 1, 0.9, 'SGD momentum'),
  /** Epochs in all (a resumed run counts those the checkpoint has done). */
  epochs: integer(1, 1_000_000, 10, 'epochs'),
  /** Triplets per batch: two labelled pairs each. Default 32; the recipe's 64 with `pairs: 'reference'` or mining. */
  batchSize: integer(1, 1 << 20, 32, 'triplets per batch (2 labelled pairs each)'),
  /** Seed of initialisation, pairs and order. Same seed on the CPU, same thread count: bit-identical weights. */
  seed: seed('seed of initialisation, pairs and order'),
  /** LibTorch threads for training, and for the model's later inference. Default: `version().threads`, the CPUs this process may use, shared between the training runs going. */
  threads,
  /** Compute precision of training, kept for the model's later inference (see `Precision`). Default: the model's (`'fp32'` for a new one). */
  precision: choice(PRECISIONS, undefined, 'compute precision: fp32, or bf16 (bfloat16 compute, fp32 weights; CPUs with AVX512_BF16 or AMX, CUDA) (default: the model\'s, fp32)'),
  /** Checkpoint every this many epochs (into outDir); 0 for none. */
  saveEvery: integer(0, 1_000_000, 2, 'checkpoint every n epochs (0: none)'),
  /**
   * On a GPU: capture the training step's forward and backward passes as a CUDA graph once and
   * replay it (PyTorch's whole-network capture); the optimiser's step stays eager, and mined
   * batches and an epoch's last, shorter batch run eagerly. Needs device `'cuda'`
   * (`ERR_UNSUPPORTED` elsewhere). Not recorded in checkpoints: a resume asks for it again. Default false.
   */
  cudaGraph: boolean(false, 'capture the training step as a CUDA graph and replay it (device cuda)'),
  /**
   * Trains only what is on top of the tower's first stages: `true` freezes every stage of the
   * tower (only the embedding layer and the head learn), a number the first that many (reference
   * 3 stages, conv4 4, resnet18 5: the stem, then layer1..layer4). Frozen BatchNorm layers keep
   * their running statistics. Default false.
   */
  freezeTower: {
    kind: 'stages',
    help: 'freeze the tower (all stages) or its first n stages; only what is on top trains',
    default: false,
    check: (value, name) => {
      if (typeof value === 'boolean' || (Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 5)) return value as boolean | number
      throw invalidArg(name, 'true, false, or a number of stages from 0 to 5', value)
    }
  } satisfies Setting<boolean | number, boolean>,
  /** Augmentation of training batches (see `AugmentOptions`); `true`: a mild preset. Default none, as the recipe. */
  augment: {
    kind: 'augment',
    help: 'augment training batches: a mild preset, or JSON options (crop, flip, rotate, translate, scale, shear, brightness, contrast)',
    default: false,
    check: (value: unknown, name: string): boolean | AugmentOptions => checkAugment(value, name)
  } satisfies Setting<boolean | AugmentOptions, false>
} as const

/**
 * The reference recipe's training settings where the defaults differ from them: what a run with
 * `pairs: 'reference'`, or with mining (whose class-balanced batches draw no pairs), takes for each
 * of these it is not given, so that the recipe stays bit-identical to what it always was
 * (docs/recipe.md). A checkpoint that did not record one of them (written before it existed)
 * trained at its value here too.
 */
export const recipeTrainingDefaults = Object.freeze({
  lr: 0.001,
  lrSchedule: 'constant' as LrSchedule,
  warmup: 0,
  batchSize: 64
}) satisfies Partial<Values<typeof trainingSettings>>

/** How a model is evaluated: the options of `model.evaluate`. */
export const evaluationSettings = {
  /** Seed of the fixed test pairs (0: the pairs training reports on). */
  testSeed: seed('seed of the fixed test pairs'),
  /** N of N-way K-shot episodes; default: the number of classes, at most 10; 0 skips them. */
  ways: integer(0, 1 << 16, undefined, 'N of N-way K-shot episodes (0: skip; default: the classes, at most 10)'),
  /** K: support images of each class in an episode. */
  shots: integer(1, 1 << 16, 1, 'K of N-way K-shot: support images a class'),
  /** Query images of each class in an episode. */
  queries: integer(1, 1 << 16, 1, 'query images a class in an episode'),
  /** Episodes drawn. */
  episodes: integer(1, 1_000_000, 1000, 'N-way K-shot episodes'),
  /** Seed of the episodes. */
  seed: seed('seed of the episodes'),
  /**
   * Where an episode draws its classes: from the whole set, or from one alphabet (the part of a
   * class name before its first '/', as Omniglot's "Latin/character01"), as Koch et al.'s
   * 20-way one-shot does.
   */
  within: choice(EPISODE_SCOPES, 'set', 'where an episode draws its classes'),
  /** Verification metrics over every pair of the set's images (in O(N) memory). */
  allPairs: boolean(true, 'verification metrics over all pairs of the images'),
  /** Precision@1, R-precision and MAP@R over each image's exact nearest neighbours. */
  retrieval: boolean(true, 'nearest-neighbour retrieval metrics')
} as const

/** How pairs and batches are drawn by the samplers of `datasets`. */
export const samplingSettings = {
  /** Pair scheme of `datasets.triplets` and `datasets.pairs`. */
  scheme: choice(PAIR_SCHEMES, 'balanced', 'pair scheme'),
  /** Seed of the draw. */
  seed: seed('seed'),
  /** Epoch number, for the schemes that draw afresh each epoch. */
  epoch: integer(0, Number.MAX_SAFE_INTEGER, 0, 'epoch')
} as const

/** How `mnist()`, `fashionMnist()` and `omniglot()` download. */
export const downloadSettings = {
  /** Download the files that are missing. Default false: no network unless asked. */
  download: boolean(false, 'download missing files (verified)'),
  /** Tries per mirror. */
  retries: integer(1, 100, 3, 'tries per mirror'),
  /** Abort an attempt after this long without data (ms). */
  timeoutMs: integer(1, Number.MAX_SAFE_INTEGER, 30_000, 'ms without data before an attempt is given up'),
  /** First back-off between tries (ms), doubling. */
  backoffMs: integer(0, Number.MAX_SAFE_INTEGER, 1000, 'first back-off between tries (ms), doubling')
} as const

/** How `datasets.imageFolder` reads a folder. */
export const imageFolderSettings = {
  /** Width the images are resized to (the model's input width). */
  width: integer(MIN_TOWER_SIDE, MAX_SIDE, modelSettings.width.default, 'width images are resized to'),
  /** Height the images are resized to. */
  height: integer(MIN_TOWER_SIDE, MAX_SIDE, modelSettings.height.default, 'height images are resized to'),
  /** Share of each class that goes to test when the folder has no train/ and test/. */
  testFraction: number(0.01, 0.99, 0.2, 'share of each class that goes to test'),
  /** 1 (grey) or 3 (RGB); default: 3 when any image of the folder has colour, else 1. */
  channels: channels('channels: 1 (grey) or 3 (RGB) (default: from the images)'),
  /** How images of another shape are brought to the size: stretched, letterboxed on black, or centre-cropped. */
  fit: choice(FITS, 'fill', 'how images of another shape are resized: cover (crop), contain (letterbox) or fill (stretch)')
} as const

/** The allowed values of every choice, for forms and menus. */
export const choices = {
  loss: LOSSES,
  mining: MININGS,
  optimizer: OPTIMIZERS,
  pairs: PAIR_SCHEMES,
  tower: TOWERS,
  fit: FITS,
  data: DATA_SOURCES,
  within: EPISODE_SCOPES,
  precision: PRECISIONS,
  lrSchedule: LR_SCHEDULES,
  weightInit: WEIGHT_INITS
} as const

/** The default of every setting, by group: what a call gets for an option it does not pass. */
export const defaults = {
  model: defaultsOf(modelSettings),
  training: defaultsOf(trainingSettings),
  /** Those of `training` that a run with `pairs: 'reference'` or with mining takes instead: the recipe's. */
  recipe: recipeTrainingDefaults,
  evaluation: defaultsOf(evaluationSettings),
  sampling: defaultsOf(samplingSettings),
  download: defaultsOf(downloadSettings),
  imageFolder: defaultsOf(imageFolderSettings),
  /** The data set of `train`, `evaluate` and the command line when none is given. */
  data: 'embedded' as DataSource
} as const

type Defaults<Table> = { readonly [K in keyof Table]: Table[K] extends { default: infer D } ? D : never }

function defaultsOf<Table extends Record<string, Setting<unknown>>> (table: Table): Defaults<Table> {
  return Object.freeze(Object.fromEntries(Object.entries(table).map(([k, s]) => [k, s.default]))) as Defaults<Table>
}
