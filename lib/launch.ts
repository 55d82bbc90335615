// `siamese-torch train --nproc N`: a launcher for people without Python's torchrun. It starts N
// ranks of the same command on this machine, with the environment torchrun would give them
// (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), forwards the
// signals it gets, and exits non-zero if any rank failed.
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'

/** A port that was free a moment ago on 127.0.0.1 (the kernel's pick). */
export async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

export interface LaunchOptions {
  /** The ranks' store port; default: MASTER_PORT, else a free one. */
  masterPort?: number
  /** After the first rank fails, how long the others get to notice and stop before they are killed. */
  graceMs: number
  /** Where the launcher's own lines go. */
  log: (line: string) => void
}

/**
 * Runs `args` (this process's own script and arguments) as `nproc` ranks; resolves with the exit
 * code: 0 when every rank succeeded, else the first failed rank's code (1 for a rank killed by a
 * signal). A signal to the launcher is forwarded to the ranks, whose own codes then say how they
 * ended: a `train --serve` stopped by SIGTERM exits 0 on every rank, as it does alone.
 */
export async function launchLocalRanks (nproc: number, args: readonly string[], options: LaunchOptions): Promise<number> {
  const envPort = Number(process.env['MASTER_PORT'])
  const port = options.masterPort ?? (Number.isInteger(envPort) && envPort > 0 ? envPort : await freePort())
  const children: ChildProcess[] = []
  for (let rank = 0; rank < nproc; rank++) {
    const env = {
      ...process.env,
      RANK: String(rank),
      LOCAL_RANK: String(rank),
      GROUP_RANK: '0',
      WORLD_SIZE: String(nproc),
      LOCAL_WORLD_SIZE: String(nproc),
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: String(port)
    }
    // Each rank in its own process group: a Ctrl-C at the terminal reaches the launcher alone,
    // which forwards it once (a rank that got it twice would leave at once, see cli.ts).
    children.push(spawn(process.execPath, [...process.execArgv, ...args], { env, stdio: 'inherit', detached: true }))
  }

  let signalled: NodeJS.Signals | undefined
  const forward = (signal: NodeJS.Signals): void => {
    signalled ??= signal
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill(signal)
  }
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
  for (const s of signals) process.on(s, forward)
  // If the launcher goes, its ranks go too.
  const killAll = (): void => { for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') }
  process.on('exit', killAll)

  let firstFailure: number | undefined
  let grace: NodeJS.Timeout | undefined
  try {
    await Promise.all(children.map(async (child, rank) => new Promise<void>((resolve) => {
      child.once('error', (err) => {
        options.log(`rank ${rank} could not start: ${err.message}`)
        firstFailure ??= 1
        resolve()
      })
      child.once('exit', (code, signal) => {
        if (code !== 0) {
          // Ranks stopped by a forwarded signal say so themselves.
          if (signalled === undefined) options.log(signal !== null ? `rank ${rank} was killed by ${signal}` : `rank ${rank} exited with code ${String(code)}`)
          firstFailure ??= code ?? 1
          grace ??= setTimeout(() => {
            options.log(`stopping the ranks still running ${options.graceMs / 1000} s after rank ${rank} failed`)
            killAll()
          }, options.graceMs)
        }
        resolve()
      })
    })))
  } finally {
    clearTimeout(grace)
    for (const s of signals) process.off(s, forward)
    process.off('exit', killAll)
  }
  return firstFailure ?? 0
}
