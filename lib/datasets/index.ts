import { dataDir } from '../cache.js'
import { classCounts, fromArrays, pixelStats } from './arrays.js'
import { FASHION_MNIST, MNIST, fashionMnist, mnist } from './catalog.js'
import { embedded } from './embedded.js'
import { idx } from './idx.js'
import { imageFolder } from './image-folder.js'
import { OMNIGLOT, alphabetOf, omniglot } from './omniglot.js'
import { classBalancedBatches, pairs, testPairs, triplets } from './sampling.js'
import { splitClasses } from './splits.js'

/**
 * Data sources (each resolves to `{ name, train, test }`) and pair/triplet samplers.
 *
 * @example
 * ```ts
 * import { datasets } from 'siamese-torch'
 * const { train, test } = await datasets.embedded()
 * const p = datasets.pairs(train, { scheme: 'balanced', seed: 1 })
 * ```
 */
export const datasets = {
  embedded,
  mnist,
  fashionMnist,
  omniglot,
  alphabetOf,
  idx,
  imageFolder,
  fromArrays,
  splitClasses,
  triplets,
  pairs,
  testPairs,
  classBalancedBatches,
  classCounts,
  pixelStats,
  /** The folder where downloaded data sets are kept (see `dataDir`). */
  dataDir,
  /** Files, mirrors and published MD5s of the downloadable sets. */
  catalogue: { mnist: MNIST, fashionMnist: FASHION_MNIST, omniglot: OMNIGLOT }
} as const

export type { LabelledImages, DataSplit } from './types.js'
export type { ArraysInput, PixelArray } from './arrays.js'
export type { SplitClassesOptions } from './splits.js'
export type { Catalogue, DownloadableOptions } from './catalog.js'
export type { DownloadProgress } from './download.js'
export type { IdxOptions } from './idx.js'
export type { ImageFolderOptions, ImageFolderProgress } from './image-folder.js'
export type { OmniglotArchive, OmniglotCatalogue, OmniglotOptions } from './omniglot.js'
export type { Triplets, Pairs, SamplingOptions, BatchOptions } from './sampling.js'
