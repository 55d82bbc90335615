import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { binding, packageRoot } from './binding.js'

/** Where the build found LibTorch (see the README, "How LibTorch is found"). */
export type LibtorchSource = 'LIBTORCH' | 'python' | 'system'

/** A GPU that LibTorch can use. */
export interface CudaDeviceInfo {
  /** Its index, as in `device: 'cuda:N'`. */
  index: number
  /** The GPU's name; empty when the addon was built without CUDA headers. */
  name: string
  /** Its memory in bytes; 0 when unknown. */
  totalMemory: number
}

/** What `version()` returns. */
export interface VersionInfo {
  /** This package's version. */
  siameseTorch: string
  /** The LibTorch version the addon was compiled against, e.g. `"1.13.0"`. */
  libtorch: string
  /** Where the build found LibTorch. */
  libtorchSource: LibtorchSource
  /** The LibTorch library file loaded at run time. */
  libtorchLibrary: string
  /** True when LibTorch can use at least one CUDA GPU now. */
  cuda: boolean
  /** True when the addon was built against a CUDA LibTorch. */
  cudaBuild: boolean
  /** How many CUDA GPUs LibTorch sees. */
  cudaDevices: number
  /** Those GPUs. */
  gpus: CudaDeviceInfo[]
  /** The CPUs this process may use: its affinity mask, capped by a cgroup CPU quota. */
  cpus: number
  /**
   * LibTorch threads a model gets when its `threads` option is not set: `cpus`, unless
   * `OMP_NUM_THREADS` says otherwise or several ranks share this host (`LOCAL_WORLD_SIZE`). Models
   * training at once in one process share them.
   */
  threads: number
  /** Where `threads` came from: `'affinity'`, `'cgroup quota'`, `'OMP_NUM_THREADS'` or `'<n> local ranks'`. */
  threadsBasis: string
  /** True when the CPU computes bfloat16 natively (AVX512_BF16 or AMX), so `precision: 'bf16'` can run on it. */
  bf16: boolean
  /** The back-ends of distributed training this build has (`'gloo'`, `'nccl'`); empty: none (`distributed` is refused). */
  distributed: Array<'gloo' | 'nccl'>
}

let cachedPackageVersion: string | undefined

/** This package's version, from its package.json (no need of the addon). */
export function packageVersion (): string {
  cachedPackageVersion ??= (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version
  return cachedPackageVersion
}

/**
 * Versions and capabilities of siamese-torch and the LibTorch it runs on, read from the addon.
 *
 * @example
 * ```ts
 * import { version } from 'siamese-torch'
 * const v = version()
 * console.log(`LibTorch ${v.libtorch} (${v.libtorchSource}), CUDA: ${v.cuda}`)
 * ```
 */
export function version (): VersionInfo {
  const native = binding().version()
  return {
    siameseTorch: packageVersion(),
    libtorch: native.libtorch,
    libtorchSource: native.libtorchSource as LibtorchSource,
    libtorchLibrary: native.libtorchLibrary,
    cuda: native.cuda,
    cudaBuild: native.cudaBuild,
    cudaDevices: native.cudaDevices.length,
    gpus: native.cudaDevices.map((d) => ({ ...d })),
    cpus: native.cpus,
    threads: native.threads,
    threadsBasis: native.threadsBasis,
    bf16: native.bf16Cpu,
    distributed: native.distributed.filter((b): b is 'gloo' | 'nccl' => b === 'gloo' || b === 'nccl')
  }
}
