import type { Fit } from '../contract.js'

/**
 * A labelled set of images, all of one size and channel count. Pixels are bytes (0 = black,
 * 255 = full intensity), image after image, row by row, channels interleaved (HWC: RGBRGB... for
 * colour, as sharp's raw output). Treat it as read-only: samplers and training read it as it is.
 */
export interface LabelledImages {
  /** `count * height * width * channels` bytes. */
  readonly images: Uint8Array
  /** `count` labels, each an index into `classes`. */
  readonly labels: Int32Array
  readonly count: number
  readonly width: number
  readonly height: number
  /** 1 (grey) or 3 (RGB). Absent means 1, so that sets built by older code stay valid. */
  readonly channels?: 1 | 3
  /** How the images were brought to this size from their files (`datasets.imageFolder`); absent for sets built otherwise. */
  readonly fit?: Fit
  /** Class names; `labels[i]` names `classes[labels[i]]`. */
  readonly classes: readonly string[]
}

/**
 * A data set: a training split and a test split, over the same classes except where a set says
 * otherwise (Omniglot's splits have classes of their own: each split's `classes` are its own).
 */
export interface DataSplit {
  /** What the data is, e.g. `"mnist (embedded)"` or the folder it came from. */
  readonly name: string
  readonly train: LabelledImages
  readonly test: LabelledImages
  /**
   * How to read the same data again: `'embedded'`, `'mnist'`, `'fashion-mnist'`, `'omniglot'` or a folder's
   * path, as `train({ data })` takes them. Checkpoints record it, so that a resume finds its data.
   * Absent for sets built in memory (and for a catalogued set read from another `root`).
   */
  readonly source?: string
  /**
   * Per-channel mean and standard deviation of the training images' pixels (0..1), which
   * `train` normalises with unless given `mean` and `std`. Set by `datasets.imageFolder` and
   * `datasets.omniglot`; absent for the other named sets, which use the reference recipe's MNIST values.
   */
  readonly stats?: { readonly mean: readonly number[], readonly std: readonly number[] }
}
