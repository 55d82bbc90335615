#!/usr/bin/env node
// The distributed benchmark: what data-parallel training over c10d (Gloo) costs, on the reference
// recipe (pairs 'reference', batch 64, the embedded digits), in interleaved runs, each a fresh
// process (or two):
//   A  one process, --threads threads (the usual run),
//   B  --threads processes of one thread each, one rank each, meeting on 127.0.0.1,
//   C  one process of one thread (what each rank of B would do alone, for scale).
// On a machine of --threads cores, B cannot be faster than A: the same cores do the same work,
// plus the all-reduce. What it shows is the overhead, and how much of the all-reduce the backward
// pass hides (the ranks' wait after it, per step).
// Then the raw cost of one step's all-reduce (scripts/bench/allreduce.py: the gradients' bytes
// summed by c10d's ProcessGroupGloo between 2 processes on loopback), and from the measured step
// and gradient size, a model of scaling over hosts: the network bandwidth that keeps the
// efficiency at 90% or more at 2, 8 and 32 hosts.
// Writes scripts/bench/results/<date>[-N]-distributed.json and .md and prints the table.
// Usage: node scripts/bench/distributed.mjs [--reps 3] [--threads 2]
//        node scripts/bench/distributed.mjs --child RANK WORLD PORT THREADS   (one run; prints JSON)
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { train } from '../../dist/index.mjs'
import { interleave, lastJson, median, thisMachine, writeResult } from './common.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const BATCH = 64 // the recipe's, global
const TRIPLETS = 5000 // the reference scheme on the ten digit classes: 500 anchors a class

async function child ([rank, world, port, threads]) {
  const distributed = Number(world) > 1 ? { rank: Number(rank), worldSize: Number(world), masterPort: Number(port), timeoutMs: 60_000 } : undefined
  const { model, history, distributed: run } = await train({
    data: 'embedded', pairs: 'reference', epochs: 1, seed: 3, threads: Number(threads), saveEvery: 0, ...(distributed ? { distributed } : {})
  })
  const steps = Math.ceil(TRIPLETS / BATCH)
  model.dispose()
  console.log(JSON.stringify({ pairsPerSecond: history[0].pairsPerSecond, steps, allReduceWaitSeconds: run?.allReduceWaitSeconds ?? 0 }))
}

/** The number of trained parameters of the reference network, from a saved model's safetensors header. */
function gradientNumel () {
  const dir = execFileSync('mktemp', ['-d']).toString().trim()
  const file = join(dir, 'm.safetensors')
  execFileSync(process.execPath, ['-e', `import('${join(root, 'dist/index.mjs')}').then(async (s) => { const m = await s.createModel(); await m.save('${file}'); m.dispose() })`])
  const b = readFileSync(file)
  const header = JSON.parse(b.subarray(8, 8 + Number(b.readBigUInt64LE(0))).toString())
  execFileSync('rm', ['-rf', dir])
  return Object.entries(header).filter(([k]) => k !== '__metadata__').reduce((n, [, v]) => n + (v.data_offsets[1] - v.data_offsets[0]) / 4, 0)
}

async function main () {
  const reps = arg('reps', 3)
  const threads = arg('threads', 2)
  const script = fileURLToPath(import.meta.url)
  const one = (t) => () => lastJson(execFileSync(process.execPath, [script, '--child', '0', '1', '0', String(t)]).toString())
  const ranks = () => {
    const port = String(29400 + Math.floor(Math.random() * 500))
    const others = Array.from({ length: threads - 1 }, (_, i) => `"${process.execPath}" "${script}" --child ${i + 1} ${threads} ${port} 1 >/dev/null &`).join(' ')
    return lastJson(execFileSync('bash', ['-c', `${others} "${process.execPath}" "${script}" --child 0 ${threads} ${port} 1; wait`]).toString())
  }
  const tools = {
    [`1 process x ${threads} threads`]: { run: one(threads) },
    [`${threads} processes x 1 thread`]: { run: ranks },
    '1 process x 1 thread': { run: one(1) }
  }
  const { runs } = interleave(tools, reps, (name, r) => console.error(`${name}: ${r.pairsPerSecond.toFixed(0)} pairs/s, wait ${(r.allReduceWaitSeconds * 1000 / r.steps).toFixed(2)} ms a step`))

  const numel = gradientNumel()
  const bytes = numel * 4
  const allReduce = lastJson(execFileSync('/usr/bin/python3', [join(here, 'allreduce.py'), '--numel', String(numel), '--world', String(threads), '--iters', '30']).toString())

  const rows = Object.entries(runs).map(([name, rs]) => {
    const pps = median(rs.map((r) => r.pairsPerSecond))
    const stepMs = 2 * BATCH / pps * 1000
    const waitMs = median(rs.map((r) => r.allReduceWaitSeconds * 1000 / r.steps))
    return { name, pairsPerSecond: pps, stepMs, waitMs, runs: rs.length }
  })
  const base = rows[0]
  const dist = rows[1]

  // The model: a ring all-reduce moves 2 (N - 1) / N of the gradients' bytes through each host's
  // link and pays 2 (N - 1) latencies. Efficiency = compute / (compute + all-reduce), the
  // all-reduce not hidden at all (the backward pass hides some: a conservative bound). Weak
  // scaling: every host keeps a batch of 64 (the global batch grows), so the compute a step is
  // the measured one-process step.
  const latencyUs = 50
  const bandwidth = (hosts, computeS) => {
    const budgetS = computeS / 9 - 2 * (hosts - 1) * latencyUs * 1e-6
    return budgetS > 0 ? 2 * (hosts - 1) / hosts * bytes * 8 / budgetS / 1e9 : Infinity
  }
  const model = [2, 8, 32].map((hosts) => ({
    hosts,
    perHostMB: 2 * (hosts - 1) / hosts * bytes / 1e6,
    gbitPerS: bandwidth(hosts, base.stepMs / 1000),
    strongGbitPerS: bandwidth(hosts, base.stepMs / 1000 / hosts)
  }))
  const gbit = (x) => (Number.isFinite(x) ? `${x.toFixed(1)} Gbit/s` : 'not reachable (the latencies alone exceed 1/9 of the step)')

  const date = new Date().toISOString().slice(0, 10)
  const result = { date, machine: thisMachine(), threads, reps, batch: BATCH, gradientBytes: bytes, rows, allReduce, model, latencyUs, runs }
  const f = (x, d = 1) => x.toFixed(d)
  const md = `# Distributed training overhead, ${date}

Machine: ${result.machine.cpuModel}, ${result.machine.cpus} CPUs. Reference recipe (pairs 'reference', global batch ${BATCH}, 1 epoch of the embedded digits), ${reps} interleaved runs each, medians. Command: \`node scripts/bench/distributed.mjs --reps ${reps} --threads ${threads}\`.

| run | pairs/s | step (ms) | all-reduce wait after backward (ms a step) | vs ${base.name} |
| --- | ---: | ---: | ---: | ---: |
${rows.map((r) => `| ${r.name} | ${f(r.pairsPerSecond, 0)} | ${f(r.stepMs)} | ${r.name === dist.name ? f(r.waitMs, 2) : '–'} | ${f(r.pairsPerSecond / base.pairsPerSecond, 2)}x |`).join('\n')}

Gradients: ${numel} float32, ${f(bytes / 1e6, 2)} MB a step. Their all-reduce alone (c10d ProcessGroupGloo, ${allReduce.world} processes on loopback, torch ${allReduce.torch} through Python, median of 30): **${f(allReduce.medianMs, 2)} ms**, ${f(allReduce.medianMs / dist.stepMs * 100)}% of a step of ${dist.name}; the wait left after the backward pass is ${f(dist.waitMs, 2)} ms (${f(dist.waitMs / dist.stepMs * 100)}%).

## Model: hosts of this machine's speed over a network

Ring all-reduce: each host's link carries 2 (N - 1) / N of the gradients' bytes a step, and the ring pays 2 (N - 1) latencies (assumed ${latencyUs} µs each, a LAN). Each host trains a batch of ${BATCH} (weak scaling), so a step's compute is the measured ${f(base.stepMs)} ms of ${base.name}. Efficiency = compute / (compute + all-reduce), with no overlap counted (the backward pass hides part of it: a conservative bound). For 90%, the all-reduce must take at most 1/9 of the compute:

| hosts | bytes through each link a step | bandwidth for ≥ 90%, batch ${BATCH} a host | the same, global batch ${BATCH} shared |
| ---: | ---: | ---: | ---: |
${model.map((m) => `| ${m.hosts} | ${f(m.perHostMB, 1)} MB | ${gbit(m.gbitPerS)} | ${gbit(m.strongGbitPerS)} |`).join('\n')}

The last column is strong scaling: the recipe's global batch of ${BATCH} split over the hosts divides each step's compute by N but not the all-reduce, so the bandwidth needed grows about N-fold, and past a few hosts the ring's latencies alone take the budget. A batch that small is not worth sharing widely; grow the batch with the hosts.
`
  const name = writeResult('distributed', date, result, md)
  console.log(md)
  console.error(`written: ${name}.json, .md`)
}

if (process.argv[2] === '--child') await child(process.argv.slice(3))
else await main()
