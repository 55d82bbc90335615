// Data-parallel training over c10d on 127.0.0.1: 2 and 3 ranks end with the weights of one
// process; torchrun and the built-in launcher start the command line as it is; a rank killed or
// hung makes the others fail with ERR_DISTRIBUTED within the timeout, and the last checkpoint
// resumes on another world size; wrong ports and mismatched ranks fail at start-up, clearly; two
// network namespaces stand in for two hosts. Every process spawned here is bounded in time and
// killed at the end.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { train, version } from 'siamese-torch'
import { root } from './helpers/run.mjs'
import { smallDigits, writeIdxFolder } from './helpers/small-data.mjs'
import { freePort } from '../dist/launch.js'

const scratch = mkdtempSync(join(tmpdir(), 'siamese-dist-'))
const children = new Set()
t.teardown(() => {
  for (const child of children) child.kill('SIGKILL')
  rmSync(scratch, { recursive: true, force: true })
})

// A tiny IDX data set on disk, as a user passes with --data.
const data = await smallDigits()
const idxDir = join(scratch, 'tiny-idx')
mkdirSync(idxDir)
writeIdxFolder(idxDir, data)
const cliArgs = (out, ...more) => ['dist/cli.js', 'train', '--data', idxDir, '--epochs', '2', '--seed', '3', '--out', out, '--json', '--dist-timeout', '20', ...more]
const lastLine = (stdout) => JSON.parse(stdout.trim().split('\n').at(-1))

const gloo = version().distributed.includes('gloo')
const env = { ...process.env, NODE_OPTIONS: '' }
for (const key of ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'TORCHELASTIC_USE_AGENT_STORE']) delete env[key]

/** Spawns a process, bounded: killed after `limitMs`. Resolves with its exit code, signal and output. */
function bounded (command, args, { limitMs = 120_000, extraEnv = {}, onStdout } = {}) {
  const child = spawn(command, args, { cwd: root, env: { ...env, ...extraEnv } })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => { stdout += chunk; onStdout?.(stdout, child) })
  child.stderr.on('data', (chunk) => { stderr += chunk })
  const timer = setTimeout(() => child.kill('SIGKILL'), limitMs)
  const done = new Promise((resolve) => child.on('exit', (code, signal) => {
    clearTimeout(timer)
    children.delete(child)
    resolve({ code, signal, stdout, stderr })
  }))
  return { child, done }
}

let runs = 0
/** Trains on the small digits in `world` processes with `options`; resolves with each rank's result. */
async function ranks (world, options, { port, extra = () => ({}) } = {}) {
  const masterPort = port ?? await freePort()
  const results = []
  for (let rank = 0; rank < world; rank++) {
    const out = join(scratch, `run-${++runs}.json`)
    const o = world === 1 && port === undefined
      ? options
      : { ...options, distributed: { rank, worldSize: world, masterPort, timeoutMs: 20_000, ...extra(rank) } }
    results.push(bounded(process.execPath, [join(root, 'test/helpers/dist-rank.mjs'), JSON.stringify(o), out]).done
      .then((r) => ({ ...r, ...(existsSync(out) ? JSON.parse(readFileSync(out, 'utf8')) : {}) })))
  }
  return Promise.all(results)
}

const maxDifference = (a, b) => Math.max(...a.flatMap((row, i) => row.map((v, j) => Math.abs(v - b[i][j]))))

// SGD: the ranks' summed gradients equal one process's up to float rounding, and so do the weights
// after an epoch. (Adam is left out of this comparison on purpose: its first steps divide each
// gradient by its own magnitude, so that a gradient that is rounding noise, e.g. the head's
// biases, whose gradients cancel, takes a full-size step of either sign. Its ranks still agree
// with each other exactly.)
const recipe = { epochs: 1, batchSize: 64, seed: 5, threads: 1, optimizer: 'sgd', lr: 0.003, saveEvery: 0 }
const tolerance = 1e-5

t.test('without c10d in this build, distributed is refused with ERR_UNSUPPORTED', { skip: gloo && 'this build has Gloo' }, async (t) => {
  await t.rejects(train({ data: await smallDigits(), distributed: { rank: 0, worldSize: 2 } }), { code: 'ERR_UNSUPPORTED' })
})

t.test('bad distributed options are refused before any work', async (t) => {
  const data = await smallDigits()
  await t.rejects(train({ data, distributed: 'yes' }), { code: 'ERR_INVALID_ARG', message: /for distributed/ })
  await t.rejects(train({ data, distributed: { rank: 2, worldSize: 2 } }), { code: 'ERR_INVALID_ARG', message: /a rank below the world size 2/ })
  await t.rejects(train({ data, distributed: { rank: 0, worldSize: 2, masterPort: 70000 } }), { code: 'ERR_INVALID_ARG' })
  await t.rejects(train({ data, distributed: { rank: 0, worldSize: 2, backend: 'mpi' } }), { code: 'ERR_INVALID_ARG' })
  await t.rejects(train({ data, distributed: { worldSize: 2, rnak: 0 } }), { code: 'ERR_INVALID_ARG', message: /rnak/ })
  // true reads the environment, where this process has no RANK or WORLD_SIZE.
  if (process.env['WORLD_SIZE'] === undefined) await t.rejects(train({ data, distributed: true }), { code: 'ERR_INVALID_ARG', message: /WORLD_SIZE/ })
})

t.test('2 and 3 ranks end an epoch with the weights of one process (pair-ce, global batch 64)', { skip: !gloo && 'no Gloo' }, async (t) => {
  const [one] = await ranks(1, recipe)
  t.notOk(one.error, JSON.stringify(one.error))
  for (const world of [2, 3]) {
    const results = await ranks(world, recipe)
    for (const [rank, r] of results.entries()) {
      t.notOk(r.error, `rank ${rank}: ${JSON.stringify(r.error)}`)
      t.same(r.distributed, { rank, worldSize: world, allReduceWaitSeconds: r.distributed.allReduceWaitSeconds })
      t.ok(maxDifference(r.embeddings, one.embeddings) < tolerance, `${world} ranks, rank ${rank}: embeddings within ${tolerance} of one process's`)
    }
    t.equal(maxDifference(results[0].embeddings, results.at(-1).embeddings), 0, 'the ranks hold the same weights, bit for bit')
    // The metrics are the whole run's: the pairs of every rank, the same test pairs.
    t.equal(results[0].history[0].testAccuracy, one.history[0].testAccuracy)
    t.ok(Math.abs(results[0].history[0].trainLoss - one.history[0].trainLoss) < 1e-6, 'the training loss is reduced over the ranks')
    t.ok(Math.abs(results[0].history[0].trainAccuracy - one.history[0].trainAccuracy) < 1e-9, 'and the training accuracy')
  }
})

t.test('3 ranks with batch-hard mining mine the global batch: the weights of one process', { skip: !gloo && 'no Gloo' }, async (t) => {
  const mined = { ...recipe, loss: 'triplet', mining: 'batch-hard' }
  const [one] = await ranks(1, mined)
  const results = await ranks(3, mined)
  for (const [rank, r] of results.entries()) {
    t.notOk(r.error, JSON.stringify(r.error))
    t.ok(maxDifference(r.embeddings, one.embeddings) < tolerance, `rank ${rank}: embeddings within ${tolerance} of one process's`)
  }
  t.ok(Math.abs(results[0].history[0].trainLoss - one.history[0].trainLoss) < 1e-6)
  t.equal(results[0].history[0].trainAccuracy, one.history[0].trainAccuracy, 'the hardest pairs are those of the whole batch')
})

t.test('start-up failures are clear, and come within the timeout', { skip: !gloo && 'no Gloo' }, async (t) => {
  // Nobody serves the store on that port: rank 1 gives up after its timeout.
  const port = await freePort()
  const alone = join(scratch, 'alone.json')
  const started = Date.now()
  const r = await bounded(process.execPath, [join(root, 'test/helpers/dist-rank.mjs'),
    JSON.stringify({ ...recipe, distributed: { rank: 1, worldSize: 2, masterPort: port, timeoutMs: 2000 } }), alone], { limitMs: 30_000 }).done
  t.equal(r.code, 0)
  const { error } = JSON.parse(readFileSync(alone, 'utf8'))
  t.equal(error.code, 'ERR_DISTRIBUTED')
  t.match(error.message, new RegExp(`rank 1 could not reach the store at 127\\.0\\.0\\.1:${port}`))
  t.match(error.message, /MASTER_ADDR and MASTER_PORT/)
  t.ok(Date.now() - started < 20_000, 'within the timeout (and start-up)')

  // Ranks started with other world sizes, or other settings: named at once, by both.
  const mismatched = await ranks(2, recipe, { extra: (rank) => (rank === 1 ? { worldSize: 3 } : {}) })
  for (const m of mismatched) {
    t.equal(m.error?.code, 'ERR_DISTRIBUTED')
    t.match(m.error?.message, /was started with other settings: 'world size=[23]' there, 'world size=[23]' here/)
  }
  const port2 = await freePort()
  const settings = await Promise.all([0, 1].map(async (rank) => {
    const out = join(scratch, `settings-${rank}.json`)
    const o = { ...recipe, batchSize: rank === 0 ? 64 : 32, distributed: { rank, worldSize: 2, masterPort: port2, timeoutMs: 20_000 } }
    await bounded(process.execPath, [join(root, 'test/helpers/dist-rank.mjs'), JSON.stringify(o), out], { limitMs: 60_000 }).done
    return JSON.parse(readFileSync(out, 'utf8'))
  }))
  t.match(settings[1].error?.message, /rank 0 was started with other settings: 'batch size=64' there, 'batch size=32' here/)
})

// ---- the command line: torchrun, the built-in launcher, faults ----

t.test('the built-in launcher: --nproc 2 runs two ranks, and rank 0 alone speaks and writes', { skip: !gloo && 'no Gloo' }, async (t) => {
  const out = join(scratch, 'nproc')
  const r = await bounded(process.execPath, cliArgs(out, '--nproc', '2')).done
  t.equal(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l))
  t.equal(lines.filter((l) => l.type === 'done').length, 1, 'one summary: rank 0\'s')
  t.same(lines.at(-1).history.map((h) => h.epoch), [1, 2])
  t.ok(existsSync(join(out, 'model.safetensors')))
  t.ok(existsSync(join(out, 'checkpoint-epoch-2.safetensors')))
  writeFileSync(join(scratch, 'nproc-history.json'), JSON.stringify(lines.at(-1).history))
})

t.test('Ctrl-C to the launcher stops every rank after the same step, and rank 0 says how to continue', { skip: !gloo && 'no Gloo' }, async (t) => {
  const out = join(scratch, 'interrupted')
  let sent = false
  const r = await bounded(process.execPath, cliArgs(out, '--epochs', '20', '--save-every', '1', '--nproc', '2'), {
    onStdout: (stdout, child) => {
      if (!sent && stdout.includes('"kind":"checkpoint"')) {
        sent = true
        child.kill('SIGINT')
      }
    }
  }).done
  t.equal(r.code, 130, r.stderr)
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l))
  t.equal(lines.filter((l) => l.type === 'stopped').length, 1, 'one rank speaks')
  t.equal(lines.at(-1).lastCheckpoint, join(out, 'checkpoint-epoch-1.safetensors'))
  t.equal(r.stderr, '', 'no rank reports an error')
})

const torchrun = spawnSync('torchrun', ['--help'], { encoding: 'utf8' })
t.test('torchrun --no_python starts the command line as it is', { skip: (torchrun.status !== 0 && 'no torchrun (python3-torch)') || (!gloo && 'no Gloo') }, async (t) => {
  const out = join(scratch, 'torchrun')
  const port = await freePort()
  // Debian's torchrun 1.13 on Python 3.11 needs --redirects 2 --tee 2 (its default 0 fails to parse).
  const r = await bounded('torchrun', ['--nproc_per_node', '2', '--master_port', String(port), '--redirects', '2', '--tee', '2',
    '--no_python', process.execPath, ...cliArgs(out)]).done
  t.equal(r.code, 0, r.stderr)
  const done = r.stdout.trim().split('\n').filter((l) => l.includes('"type":"done"'))
  t.equal(done.length, 1, 'one summary: rank 0\'s')
  const history = JSON.parse(done[0].replace(/^\[[^\]]*\]:/, '')).history
  t.ok(existsSync(join(out, 'model.safetensors')))
  const nproc = join(scratch, 'nproc-history.json')
  if (existsSync(nproc)) {
    const ours = JSON.parse(readFileSync(nproc, 'utf8'))
    t.same(history.map((h) => [h.trainLoss, h.testAccuracy]), ours.map((h) => [h.trainLoss, h.testAccuracy]), 'the run --nproc 2 made')
  }
})

t.test('SIGKILL of a rank mid-run: the others fail with ERR_DISTRIBUTED in time; the checkpoint resumes on 3 ranks', { skip: !gloo && 'no Gloo' }, async (t) => {
  const out = join(scratch, 'killed')
  const port = String(await freePort())
  const args = cliArgs(out, '--epochs', '4', '--save-every', '1')
  let killedAt = 0
  // Rank 1 is killed once rank 0 has written its first checkpoint.
  const rank1 = bounded(process.execPath, args, { extraEnv: { RANK: '1', WORLD_SIZE: '2', MASTER_PORT: port } })
  const rank0 = bounded(process.execPath, args, {
    extraEnv: { RANK: '0', WORLD_SIZE: '2', MASTER_PORT: port },
    onStdout: (stdout) => {
      if (killedAt === 0 && stdout.includes('"kind":"checkpoint"')) {
        killedAt = Date.now()
        rank1.child.kill('SIGKILL')
      }
    }
  })
  const [r0, r1] = await Promise.all([rank0.done, rank1.done])
  t.equal(r1.signal, 'SIGKILL')
  t.equal(r0.code, 1)
  t.match(r0.stderr, /^siamese-torch \[rank 0\]: ERR_DISTRIBUTED: rank 0: .* failed, rank 1 stopped answering/m)
  t.ok(Date.now() - killedAt < 20_000, `rank 0 stopped ${Date.now() - killedAt} ms after the kill (timeout 20 s)`)
  const checkpoint = join(out, 'checkpoint-epoch-1.safetensors')
  t.ok(existsSync(checkpoint))
  const resumed = await bounded(process.execPath, ['dist/cli.js', 'train', '--resume', checkpoint, '--out', out, '--json', '--nproc', '3']).done
  t.equal(resumed.code, 0, resumed.stderr)
  t.same(lastLine(resumed.stdout).history.map((h) => h.epoch), [2, 3, 4], 'epochs 2 to 4 on 3 ranks')
})

t.test('a hung rank (SIGSTOP): the others fail with ERR_DISTRIBUTED within the timeout', { skip: !gloo && 'no Gloo' }, async (t) => {
  const out = join(scratch, 'hung')
  const port = String(await freePort())
  const args = [...cliArgs(out, '--epochs', '20'), '--dist-timeout', '3']
  let stoppedAt = 0
  const rank1 = bounded(process.execPath, args, { extraEnv: { RANK: '1', WORLD_SIZE: '2', MASTER_PORT: port } })
  const rank0 = bounded(process.execPath, args, {
    extraEnv: { RANK: '0', WORLD_SIZE: '2', MASTER_PORT: port },
    onStdout: (stdout) => {
      if (stoppedAt === 0 && stdout.includes('"type":"epoch"')) {
        stoppedAt = Date.now()
        rank1.child.kill('SIGSTOP')
      }
    }
  })
  const r0 = await rank0.done
  rank1.child.kill('SIGKILL')
  t.equal(r0.code, 1)
  t.match(r0.stderr, /ERR_DISTRIBUTED: rank 0: .* failed, rank 1 stopped answering/)
  t.ok(Date.now() - stoppedAt < 15_000, `rank 0 stopped ${Date.now() - stoppedAt} ms after rank 1 hung (timeout 3 s)`)
})

// Two network namespaces joined by a veth pair: two hosts as far as the ranks can tell.
const netns = spawnSync('ip', ['netns', 'add', 'siamese-probe'], { encoding: 'utf8' })
if (netns.status === 0) spawnSync('ip', ['netns', 'del', 'siamese-probe'])
t.test('two hosts: ranks in two network namespaces over a veth link', { skip: (netns.status !== 0 && `no network namespaces here (${(netns.stderr || netns.error?.message || '').trim()})`) || (!gloo && 'no Gloo') }, async (t) => {
  const [a, b] = [`sdist-a-${process.pid}`, `sdist-b-${process.pid}`]
  const ip = (...args) => spawnSync('ip', args, { encoding: 'utf8' })
  t.teardown(() => { ip('netns', 'del', a); ip('netns', 'del', b) })
  for (const [command, ...args] of [
    ['netns', 'add', a], ['netns', 'add', b],
    ['link', 'add', 'sdist-va', 'type', 'veth', 'peer', 'name', 'sdist-vb'],
    ['link', 'set', 'sdist-va', 'netns', a], ['link', 'set', 'sdist-vb', 'netns', b],
    ['-n', a, 'addr', 'add', '10.231.0.1/24', 'dev', 'sdist-va'], ['-n', b, 'addr', 'add', '10.231.0.2/24', 'dev', 'sdist-vb'],
    ['-n', a, 'link', 'set', 'sdist-va', 'up'], ['-n', b, 'link', 'set', 'sdist-vb', 'up'],
    ['-n', a, 'link', 'set', 'lo', 'up'], ['-n', b, 'link', 'set', 'lo', 'up']
  ]) {
    const r = ip(command, ...args)
    t.equal(r.status, 0, `ip ${command} ${args.join(' ')} ${r.stderr}`)
  }
  const out = join(scratch, 'hosts')
  const host = (ns, rank, ifname) => bounded('ip', ['netns', 'exec', ns, process.execPath, ...cliArgs(out)], {
    extraEnv: { RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: '10.231.0.1', MASTER_PORT: '29500', GLOO_SOCKET_IFNAME: ifname }
  }).done
  const [r0, r1] = await Promise.all([host(a, 0, 'sdist-va'), host(b, 1, 'sdist-vb')])
  t.equal(r0.code, 0, r0.stderr)
  t.equal(r1.code, 0, r1.stderr)
  t.same(lastLine(r0.stdout).history.map((h) => h.epoch), [1, 2])
  t.equal(r1.stdout, '', 'rank 1 prints nothing')
})
