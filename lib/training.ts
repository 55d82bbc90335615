// Runs the native trainer on a model: options resolved and checked (the output folder and the data
// included) before the first batch, events delivered, aborts mapped. The trainer itself runs on
// its own native thread (native/addon/model.cc), so the event loop stays free.
import { binding, type NativeModel, type NativeTrainingEvent } from './binding.js'
import { toNativeData } from './datasets/arrays.js'
import { presentClasses, unseenClasses } from './datasets/splits.js'
import { resolveDistributed, type DistributedRun } from './distributed.js'
import { SiameseTorchError } from './errors.js'
import { prepareOutDir } from './files.js'
import {
  frozenStages, nativeAugment, recordedOptions, resolveFit, resolveTrainingData, resolveTrainingSettings, shapeName, trainOptionsOf,
  type Checkpoint
} from './options.js'
import { epochMetrics, type EpochMetrics, type ProgressEvent } from './progress.js'
import { functionOption, invalidArg, nonEmptyString } from './validate.js'

let warnedAboutCallback = false

/** What a run returns: its epochs' metrics, and how a distributed run went. */
export interface TrainingResult {
  history: EpochMetrics[]
  distributed?: DistributedRun
}

/** What becomes of the model when training is aborted, for the ABORT_ERR message. */
export type AfterAbort = 'kept' | 'freed'

/**
 * Trains `native` with options `o` (already checked for unknown keys). `checkpoint`: the
 * checkpoint the model was loaded from, whose epoch, options and data a resume continues.
 */
export async function runTraining (native: NativeModel, o: Record<string, unknown>, checkpoint: Checkpoint | undefined,
  afterAbort: AfterAbort): Promise<TrainingResult> {
  const { config } = native.info()
  const settings = resolveTrainingSettings(o, checkpoint)
  if (settings.mining !== 'none' && config.loss !== 'triplet') throw invalidArg('mining', "'none' unless loss is 'triplet'", settings.mining)
  const startEpoch = checkpoint?.epoch ?? 0
  if (startEpoch >= settings.epochs) {
    throw invalidArg('epochs', `more than the ${startEpoch} epochs the checkpoint has done`, settings.epochs)
  }
  const onProgress = o['onProgress'] === undefined ? undefined : functionOption<(e: ProgressEvent) => void>(o['onProgress'], 'onProgress')
  const signal = o['signal']
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArg('signal', 'an AbortSignal', signal)
  const distributed = resolveDistributed(o['distributed'])
  if (distributed !== undefined && distributed.worldSize > 1 && binding().version().distributed.length === 0) {
    throw new SiameseTorchError('this build of siamese-torch has no distributed training: it was built without c10d\'s Gloo ' +
      'back-end (install Gloo\'s headers, libgloo-dev on Debian, and rebuild)', 'ERR_UNSUPPORTED')
  }
  // Only rank 0 writes: the other ranks' outDir may not even exist on their hosts.
  const writes = distributed === undefined || distributed.rank === 0
  const outDir = o['outDir'] === undefined || !writes ? '' : await prepareOutDir(nonEmptyString(o['outDir'], 'outDir'), 'outDir')
  const freezeStages = frozenStages(settings.freezeTower, config.tower)
  const augment = nativeAugment(settings.augment)
  const fit = resolveFit(o, checkpoint?.options ?? trainOptionsOf(native.info().metadata))
  const data = await resolveTrainingData(o, checkpoint, { width: config.width, height: config.height, channels: config.channels, fit })
  if (data.train.width !== config.width || data.train.height !== config.height || (data.train.channels ?? 1) !== config.channels) {
    throw invalidArg('data', `${shapeName(config)} images, the model's input`, `${shapeName(data.train)} images`)
  }
  if (signal?.aborted) throw new SiameseTorchError('training was aborted before it started', 'ABORT_ERR', { cause: signal.reason })

  // The model's classes: the training split's, or the test split's when it extends them (a set
  // built in memory whose training split lacks its last classes). Splits of other classes
  // (datasets.splitClasses) keep the training split's.
  const extendsClasses = (longer: readonly string[], shorter: readonly string[]): boolean =>
    longer.length > shorter.length && shorter.every((name, i) => longer[i] === name)
  const classes = extendsClasses(data.test.classes, data.train.classes) ? data.test.classes : data.train.classes
  const numClasses = Math.max(data.train.classes.length, data.test.classes.length)
  const testClasses = presentClasses(data.test).length
  const unseen = unseenClasses(data.train, data.test)
  // Recorded in every file, so that a checkpoint resumes with the same settings and data.
  native.setMetadata({ classes: JSON.stringify(classes), train_options: JSON.stringify(recordedOptions(settings, data)) })

  const deliver = (native: NativeTrainingEvent): void => {
    if (!onProgress) return
    const event: ProgressEvent = native.type === 'epoch' ? { ...native, testClasses, unseenClasses: unseen } : native
    try {
      onProgress(event)
    } catch (err) {
      if (!warnedAboutCallback) {
        warnedAboutCallback = true
        process.emitWarning(`siamese-torch: onProgress threw (training goes on): ${err instanceof Error ? err.message : String(err)}`)
      }
    }
  }
  const stop = (): void => native.stopTraining()
  signal?.addEventListener('abort', stop, { once: true })
  try {
    const result = await native.train(toNativeData(data.train, numClasses), toNativeData(data.test, numClasses), {
      ...settings,
      threads: settings.threads ?? 0,
      outDir,
      testSeed: 0,
      startEpoch,
      resume: checkpoint !== undefined,
      expectedDataFingerprint: checkpoint?.dataFingerprint ?? '',
      freezeStages,
      augment,
      ...(distributed !== undefined ? { distributed } : {})
    }, deliver)
    const history = result.history.map((m) => epochMetrics({ ...m, testClasses, unseenClasses: unseen }))
    return { history, ...(distributed !== undefined ? { distributed: { rank: result.rank, worldSize: result.worldSize, allReduceWaitSeconds: result.allReduceWaitSeconds } } : {}) }
  } catch (err) {
    if (err instanceof SiameseTorchError && err.code === 'ABORT_ERR') {
      const outcome = afterAbort === 'kept'
        ? 'the model keeps the weights of its last completed step'
        : 'the model train() built is freed (to keep one after an abort, use createModel() and model.train())'
      throw new SiameseTorchError(`training was aborted; ${outcome}`, 'ABORT_ERR', signal?.aborted ? { cause: signal.reason } : {})
    }
    throw err
  } finally {
    signal?.removeEventListener('abort', stop)
  }
}
