// Loads the native addon and types it. The only module that touches the raw addon object.
import { existsSync } from 'node:fs'
import { join, resolve, sep } from 'node:path'

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
  threads: number
}

/** Both files of one IDX split, as read natively. */
export interface NativeIdxSplit {
  images: Buffer
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

/** The raw addon: plain values in, plain values out; every check happens before a call. */
export interface Binding {
  init(errorClass: typeof SiameseTorchError): void
  version(): NativeVersion
  readIdx(imagesPath: string, labelsPath: string, numClasses: number): Promise<NativeIdxSplit>
  sampleTriplets(labels: Int32Array, numClasses: number, scheme: 'reference' | 'balanced', seed: number, epoch: number): NativeTriplets
  classBalancedBatches(labels: Int32Array, numClasses: number, classesPerBatch: number, imagesPerClass: number,
    seed: number, epoch: number): Int32Array
}

/** The package's root folder (dist/ sits in it). */
export const packageRoot = resolve(__dirname, '..')

const ADDON_FILE = 'siamese_torch.node'

/** Where the addon may be, in order: the build folders, or only SIAMESE_TORCH_ADDON when it is set. */
export function addonCandidates (env: NodeJS.ProcessEnv = process.env): string[] {
  const candidates = [
    join(packageRoot, 'build', 'Release', ADDON_FILE),
    join(packageRoot, 'build', 'Debug', ADDON_FILE)
  ]
  const explicit = env['SIAMESE_TORCH_ADDON']
  return explicit ? [resolve(explicit)] : candidates
}

/** A short, actionable reason for a failed `require` of an addon file. */
export function explainLoadFailure (file: string, err: unknown): string {
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
