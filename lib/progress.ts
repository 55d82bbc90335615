// What training reports: the metrics of an epoch and the events `onProgress` receives. Types
// only, shared by the option types (options.ts) and the code that runs training (training.ts).

/** Metrics of one epoch, measured on the fixed test pairs after it. */
export interface EpochMetrics {
  /** 1-based. */
  epoch: number
  /** Mean training loss over the epoch's batches. */
  trainLoss: number
  /**
   * Training pairs decided right during the epoch, as each batch was trained: the head's verdict
   * for pair-ce; for the distance losses, a triplet whose positive is closer than its negative
   * counts as two right pairs (for mined batches: its hardest positive and negative).
   */
  trainAccuracy: number
  /** The loss on the test triplets. */
  testLoss: number
  /** Pair accuracy on the test pairs (P(same) >= 0.5; distance <= threshold for distance losses). */
  testAccuracy: number
  /** ROC AUC on the test pairs. */
  auc: number
  /** Best threshold on the test pairs (P(same) for pair-ce, distance otherwise). */
  threshold: number
  /** Wall time of the epoch, evaluation included. */
  seconds: number
  /** Labelled training pairs per second (each triplet is two pairs). */
  pairsPerSecond: number
  /** Classes of the test split (that have images). */
  testClasses: number
  /**
   * How many of them have no training image. Equal to `testClasses` when the test figures are
   * all on classes the model never trained on (as with `datasets.splitClasses`); 0 when every
   * test class was trained.
   */
  unseenClasses: number
}

/** A throttled report from inside an epoch (at most every 100 ms, and after the last batch). */
export interface BatchEvent {
  type: 'batch'
  epoch: number
  epochs: number
  batch: number
  batches: number
  /** Loss of this batch. */
  loss: number
  /** The learning rate this batch's step was taken with (see `lrSchedule`). */
  lr: number
  pairsPerSecond: number
  /** Seconds left in this epoch, at the current pace. */
  etaSeconds: number
}

/** Sent after each epoch: its metrics, as `history` holds them, with `type: 'epoch'`. */
export interface EpochEvent extends EpochMetrics {
  type: 'epoch'
}

/** Sent after a file is written (atomically). */
export interface FileEvent {
  type: 'file'
  kind: 'checkpoint' | 'model'
  path: string
}

export type ProgressEvent = BatchEvent | EpochEvent | FileEvent

/** The metrics of an epoch event, without its `type`: the shape `history` holds. */
export function epochMetrics (event: EpochMetrics): EpochMetrics {
  const { epoch, trainLoss, trainAccuracy, testLoss, testAccuracy, auc, threshold, seconds, pairsPerSecond, testClasses, unseenClasses } = event
  return { epoch, trainLoss, trainAccuracy, testLoss, testAccuracy, auc, threshold, seconds, pairsPerSecond, testClasses, unseenClasses }
}
