/**
 * A labelled set of grayscale images, all of one size. Pixels are bytes (0 = black, 255 = white),
 * image after image, row by row. Treat it as read-only: samplers and training read it as it is.
 */
export interface LabelledImages {
  /** `count * height * width` pixels. */
  readonly images: Uint8Array
  /** `count` labels, each an index into `classes`. */
  readonly labels: Int32Array
  readonly count: number
  readonly width: number
  readonly height: number
  /** Class names; `labels[i]` names `classes[labels[i]]`. */
  readonly classes: readonly string[]
}

/** A data set: a training split and a test split over the same classes. */
export interface DataSplit {
  /** What the data is, e.g. `"mnist (embedded)"` or the folder it came from. */
  readonly name: string
  readonly train: LabelledImages
  readonly test: LabelledImages
  /**
   * How to read the same data again: `'embedded'`, `'mnist'`, `'fashion-mnist'` or a folder's
   * path, as `train({ data })` takes them. Checkpoints record it, so that a resume finds its data.
   * Absent for sets built in memory (and for a catalogued set read from another `root`).
   */
  readonly source?: string
}
