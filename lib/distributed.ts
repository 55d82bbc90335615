// Data-parallel training's options: where the ranks meet and who this process is, from explicit
// options or from the environment that torchrun, Kubernetes' PyTorchJob and `siamese-torch train
// --nproc` set (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). The training itself is native
// (native/core/distributed.h); docs/distributed.md shows how to launch it.
import { invalidArg, integerIn, isPlainObject, nonEmptyString, optionsObject } from './validate.js'

/** The c10d back-end: Gloo (CPU, and CUDA tensors), NCCL (CUDA builds that have it), or the best for the device. */
export type DistributedBackend = 'auto' | 'gloo' | 'nccl'

/**
 * Where the ranks of a distributed run meet, and which one this process is. Every field left out
 * is read from the environment as PyTorch's `env://` reads it (`RANK`, `WORLD_SIZE`,
 * `MASTER_ADDR`, `MASTER_PORT`), then takes its default.
 *
 * @example
 * ```ts
 * // rank 1 of 2; rank 0 runs the same with rank: 0 on host 10.0.0.1
 * await train({ data: 'mnist', distributed: { rank: 1, worldSize: 2, masterAddr: '10.0.0.1', masterPort: 29500 } })
 * ```
 */
export interface DistributedOptions {
  /** This process's rank, 0 to worldSize - 1; rank 0 reports progress and writes the files. */
  rank?: number
  /** The number of processes in the run. */
  worldSize?: number
  /** The host of rank 0 (which serves the store, unless torchrun's agent does). Default 127.0.0.1. */
  masterAddr?: string
  /** The store's port. Default 29500. */
  masterPort?: number
  /** Default `'auto'`: NCCL for a CUDA model where the build has it, else Gloo. */
  backend?: DistributedBackend
  /**
   * How long to wait for the other ranks (to join, and in each collective) before failing with
   * `ERR_DISTRIBUTED`. Default 300000 (5 minutes).
   */
  timeoutMs?: number
}

/** How a distributed run went, on this rank (in the result of `train` and `model.train`). */
export interface DistributedRun {
  rank: number
  worldSize: number
  /**
   * Seconds the steps waited for their gradients' all-reduce after the backward pass: the
   * communication that the backward pass did not hide.
   */
  allReduceWaitSeconds: number
}

/** What the addon is given (native/core/distributed.h, DistributedConfig). */
export interface NativeDistributed {
  rank: number
  worldSize: number
  masterAddr: string
  masterPort: number
  agentStore: boolean
  backend: DistributedBackend
  timeoutMs: number
  runId: string
}

const BACKENDS: readonly DistributedBackend[] = ['auto', 'gloo', 'nccl']
const KEYS = ['rank', 'worldSize', 'masterAddr', 'masterPort', 'backend', 'timeoutMs'] as const
export const DEFAULT_MASTER_PORT = 29500
const DEFAULT_TIMEOUT_MS = 300_000

/** The environment variable `name` as an integer, or undefined when unset. */
function envInteger (env: NodeJS.ProcessEnv, name: string, min: number, max?: number): number | undefined {
  const text = env[name]
  if (text === undefined || text === '') return undefined
  const value = /^\d+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN
  return integerIn(value, `environment variable ${name}`, min, max)
}

/** Whether this process was started as a rank of a distributed run (WORLD_SIZE set). */
export function launchedAsRank (env: NodeJS.ProcessEnv = process.env): boolean {
  return env['WORLD_SIZE'] !== undefined && env['WORLD_SIZE'] !== ''
}

/**
 * The `distributed` option: `true` (all from the environment) or `DistributedOptions`; undefined
 * or false for a run in this process alone.
 */
export function resolveDistributed (value: unknown, env: NodeJS.ProcessEnv = process.env): NativeDistributed | undefined {
  if (value === undefined || value === false) return undefined
  if (value !== true && !isPlainObject(value)) throw invalidArg('distributed', 'true or an object of DistributedOptions', value)
  const o = value === true ? {} : optionsObject(value, 'distributed', KEYS)
  const worldSize = o['worldSize'] !== undefined
    ? integerIn(o['worldSize'], 'distributed.worldSize', 1, 1 << 16)
    : envInteger(env, 'WORLD_SIZE', 1, 1 << 16)
  if (worldSize === undefined) throw invalidArg('distributed.worldSize', 'a world size (or WORLD_SIZE in the environment)', undefined)
  const rank = o['rank'] !== undefined ? integerIn(o['rank'], 'distributed.rank', 0) : envInteger(env, 'RANK', 0)
  if (rank === undefined) throw invalidArg('distributed.rank', 'a rank (or RANK in the environment)', undefined)
  if (rank >= worldSize) throw invalidArg('distributed.rank', `a rank below the world size ${worldSize}`, rank)
  const masterAddr = o['masterAddr'] !== undefined
    ? nonEmptyString(o['masterAddr'], 'distributed.masterAddr')
    : (env['MASTER_ADDR'] !== undefined && env['MASTER_ADDR'] !== '' ? env['MASTER_ADDR'] : '127.0.0.1')
  const masterPort = o['masterPort'] !== undefined
    ? integerIn(o['masterPort'], 'distributed.masterPort', 1, 65535)
    : envInteger(env, 'MASTER_PORT', 1, 65535) ?? DEFAULT_MASTER_PORT
  const backend = o['backend'] ?? 'auto'
  if (!BACKENDS.includes(backend as DistributedBackend)) throw invalidArg('distributed.backend', `one of ${BACKENDS.join(', ')}`, backend)
  const timeoutMs = o['timeoutMs'] !== undefined ? integerIn(o['timeoutMs'], 'distributed.timeoutMs', 1, 24 * 3_600_000) : DEFAULT_TIMEOUT_MS
  return {
    rank,
    worldSize,
    masterAddr,
    masterPort,
    // torchrun's agent serves the store on MASTER_PORT: rank 0 must not start another there.
    agentStore: /^(1|true)$/i.test(env['TORCHELASTIC_USE_AGENT_STORE'] ?? ''),
    backend: backend as DistributedBackend,
    timeoutMs,
    // A restarted torchrun job meets under fresh keys of the same store.
    runId: `${env['TORCHELASTIC_RUN_ID'] ?? 'run'}-${env['TORCHELASTIC_RESTART_COUNT'] ?? '0'}`
  }
}
