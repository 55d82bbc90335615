#!/usr/bin/env node
// This machine's fp32 and bf16 peak, measured, and the oneDNN kernels our convolutions run:
//   1. native/bench/peak.cc's FMA loops per ISA level (1 thread and one per CPU), and LibTorch's
//      GEMMs and convolutions in fp32 and bf16 against them (about 30 s);
//   2. the same LibTorch calls once each with ONEDNN_VERBOSE=1, to name the oneDNN kernel each one
//      runs (none: it did not go to oneDNN);
//   3. a few training steps of the reference recipe (native/core's trainer, as the addon runs it)
//      with ONEDNN_VERBOSE=1: which kernel every convolution runs forward, backward_data and
//      backward_weights, its shape and its time.
// run.mjs then reports training against this measured peak. The binary is built like core_bench,
// into build/core-bench (SIAMESE_TORCH_BENCH_BUILD: elsewhere).
// Writes scripts/bench/results/<date>[-N]-peak.json and .md and prints the table.
// Usage: node scripts/bench/peak.mjs [--threads 2] [--steps 20]
import { execFileSync } from 'node:child_process'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { buildBench, lastJson, median, thisMachine, writeResult } from './common.mjs'

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const threads = arg('threads', 2)
const steps = arg('steps', 20)
const command = 'node scripts/bench/peak.mjs'
const started = Date.now()
// Other work on the machine lowers every figure but the FMA loops' (short runs, best of many):
// the load average before and after says how busy it was.
const loadBefore = loadavg()[0]

const bin = join(buildBench('peak_bench'), 'peak_bench')
// oneDNN reads ONEDNN_VERBOSE (v2.5 and later), DNNL_VERBOSE (v1 and v2) or MKLDNN_VERBOSE (v0).
const verbose = { ...process.env, ONEDNN_VERBOSE: '1', DNNL_VERBOSE: '1', MKLDNN_VERBOSE: '1' }
const run = (args, env) => execFileSync(bin, args, { encoding: 'utf8', env, maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'inherit'] })

console.error('measuring the peak (about 30 s) ...')
const measured = lastJson(run([], process.env))
console.error('naming the oneDNN kernels of those calls ...')
const probe = parseVerbose(run(['--probe'], verbose))
// Training on 1 thread too: oneDNN may pick other kernels, and a machine shared with other work
// stretches a 1-thread step less than one whose threads wait for each other.
const training = [...new Set([1, threads])].map((t) => {
  console.error(`${steps} training steps of the reference recipe on ${t} thread${t > 1 ? 's' : ''}, with ONEDNN_VERBOSE=1 ...`)
  const out = run(['--train', String(steps), String(t)], verbose)
  return profile(t, lastJson(out).steps, parseVerbose(out))
})

/**
 * oneDNN's verbose lines: its version, ISA and threading (info lines) and every primitive
 * executed (exec lines), each after the last "peak_bench,op,NAME" marker line, if any.
 */
function parseVerbose (out) {
  const info = {}
  const execs = []
  let op
  for (const line of out.split('\n')) {
    const f = line.split(',')
    if (f[0] === 'peak_bench' && f[1] === 'op') op = f.slice(2).join(',')
    if (!/^(onednn|dnnl|mkldnn)_verbose$/.test(f[0])) continue
    if (f[1] === 'info') {
      const text = f.slice(2).join(',')
      info.version ??= /(?:oneDNN|DNNL|MKL-DNN) v[\d.]+/.exec(text)?.[0]
      info.isa ??= /isa:(.*)/.exec(text)?.[1]
      info.runtime ??= /runtime:(\w+)/.exec(text)?.[1]
      continue
    }
    // v0: marker,exec,primitive,impl,...; v1 and later: marker,exec,engine,primitive,impl,...
    // (v3.1+ puts "primitive," before exec); the problem and the time (ms) are always last.
    let i = f.indexOf('exec')
    if (i < 0) continue
    if (f[i + 1] === 'cpu' || f[i + 1] === 'gpu') i++
    execs.push({ op, primitive: f[i + 1], impl: f[i + 2], prop: f[i + 3], layouts: f[i + 4], problem: f.at(-2), ms: Number(f.at(-1)) })
  }
  return { info, execs }
}

// A convolution's FLOP (multiply-adds x 2; the same for forward, backward_data and
// backward_weights) from its problem descriptor, e.g. mb192_ic64oc128_ih11oh7kh5sh1dh0ph0_iw11ow7kw5sw1dw0pw0.
function convShape (problem) {
  const m = /mb(\d+)_(?:g(\d+))?ic(\d+)oc(\d+)_.*?ih(\d+)oh(\d+)kh(\d+).*?iw(\d+)ow(\d+)kw(\d+)/.exec(problem)
  if (!m) return undefined
  const [mb, g, ic, oc, ih, oh, kh, iw, ow, kw] = m.slice(1).map((x) => Number(x ?? 1))
  return { mb, ic, oc, ih, oh, kh, iw, ow, kw, flop: (2 * mb * oh * ow * oc * (ic / g) * kh * kw) }
}

// The reference tower's layers by output channels and kernel (docs/recipe.md).
function layerName (s) {
  return ({ '64:7': 'conv1', '128:5': 'conv2', '256:5': 'conv3', '512:3': 'linear1' })[`${s.oc}:${s.kh}`] ??
    `${s.ic}->${s.oc} ${s.kh}x${s.kw}`
}

// Which oneDNN kernel each LibTorch call of the measurement ran.
const kernelOf = (op) => {
  const ran = probe.execs.filter((e) => e.op === op && e.primitive !== 'reorder')
  return ran.length ? [...new Set(ran.map((e) => `${e.primitive} ${e.impl}`))].join(', ') : 'none (not oneDNN)'
}
const torch = measured.torch.map((r) => ({ ...r, onednn: kernelOf(`${r.op} ${r.precision}`) }))

/**
 * A training run's oneDNN primitives by kind, kernel, pass, layouts and problem, each with its calls a step
 * and its time a call (median and fastest); convolutions also with their layer, GFLOP/s and share
 * of the measured fp32 peak on as many threads.
 */
function profile (t, stepsRun, { info, execs }) {
  const fp32Peak = measured.peak[t]?.fp32 ?? measured.peak[Math.max(...Object.keys(measured.peak).map(Number))].fp32
  const groups = new Map()
  for (const e of execs) {
    const key = [e.primitive, e.impl, e.prop, e.layouts, e.problem].join('|')
    if (!groups.has(key)) groups.set(key, { primitive: e.primitive, impl: e.impl, prop: e.prop, layouts: e.layouts, problem: e.problem, ms: [] })
    groups.get(key).ms.push(e.ms)
  }
  const primitives = [...groups.values()].map((g) => {
    const msPerCall = median(g.ms)
    const out = {
      primitive: g.primitive,
      impl: g.impl,
      prop: g.prop,
      layouts: g.layouts, // oneDNN's memory descriptors: which layout goes into which
      problem: g.problem,
      calls: g.ms.length,
      callsPerStep: g.ms.length / stepsRun,
      msPerCall,
      bestMsPerCall: Math.min(...g.ms),
      msPerStep: (msPerCall * g.ms.length) / stepsRun
    }
    const shape = g.primitive === 'convolution' ? convShape(g.problem) : undefined
    if (!shape) return out
    const gflops = shape.flop / (msPerCall / 1000) / 1e9
    const bestGflops = shape.flop / (out.bestMsPerCall / 1000) / 1e9
    return { layer: layerName(shape), ...out, flop: shape.flop, gflops, bestGflops, ofFp32Peak: gflops / fp32Peak, bestOfFp32Peak: bestGflops / fp32Peak }
  })
  const passOrder = ['forward_training', 'forward_inference', 'backward_data', 'backward_weights']
  primitives.sort((a, b) => (a.layer ?? '~').localeCompare(b.layer ?? '~') || passOrder.indexOf(a.prop) - passOrder.indexOf(b.prop))
  return { threads: t, steps: stepsRun, fp32Peak, onednn: info, primitives }
}

const machine = thisMachine()
const date = new Date().toISOString().slice(0, 10)
const result = {
  date,
  measuredAt: new Date().toISOString(),
  ...machine,
  machine: `${machine.cpuModel}, ${machine.cpus} vCPUs`,
  command,
  versions: { libtorch: measured.libtorch, onednn: probe.info.version ?? training[0].onednn.version },
  onednn: { ...training[0].onednn, ...probe.info },
  clock: measured.clock,
  fma: measured.fma,
  peak: measured.peak,
  torch,
  training: { what: 'the reference recipe (reference tower and pairs, batch 64, Adam) on random 28x28 images, native/core\'s trainer', runs: training },
  loadAverage: { before: loadBefore, after: loadavg()[0] },
  minutes: (Date.now() - started) / 60000
}

// The table.
const f1 = (x) => x.toFixed(1)
const pct = (x) => `${(100 * x).toFixed(1)}%`
// Before: other work only (after counts this run too).
const busy = result.loadAverage.before
const load = `Load average (1 minute) ${result.loadAverage.before.toFixed(1)} before, ${result.loadAverage.after.toFixed(1)} after, on ${machine.cpus} CPUs` +
  (busy > 0.5 * machine.cpus ? ': other work was running, which lowers the LibTorch and training figures, those on all threads most.' : '.')
const clocks = measured.clock.measured.map((c) => `${c.ghz.toFixed(2)} GHz on ${c.threads} thread${c.threads > 1 ? 's' : ''}`).join(', ')
const rows = [load, '', `Clock under load: ${clocks} (${measured.clock.method}); /proc/cpuinfo says ${measured.clock.cpuinfoMHz.toFixed(0)} MHz.`, '',
  '| FMA loop | precision | threads | GFLOP/s | FLOP/cycle/core |', '| --- | --- | --- | --- | --- |',
  ...measured.fma.map((r) => `| ${r.isa} | ${r.precision} | ${r.threads} | ${r.supported ? f1(r.gflops) : 'unsupported by this CPU'} | ${r.supported ? f1(r.flopPerCyclePerCore) : ''} |`),
  '', `Peak (the best loop of each precision): ${Object.entries(measured.peak).map(([t, p]) => `${t} thread${t > 1 ? 's' : ''}: fp32 ${f1(p.fp32)}, bf16 ${f1(p.bf16)} GFLOP/s`).join('; ')}.`,
  '', '| LibTorch call | precision | problem | oneDNN kernel | threads | GFLOP/s, best (median) | % of the measured peak of its precision |',
  '| --- | --- | --- | --- | --- | --- | --- |',
  ...torch.map((r) => `| ${r.path} (${r.op}) | ${r.precision} | ${r.shape} | ${r.onednn} | ${r.threads} | ${f1(r.bestGflops)} (${f1(r.medianGflops)}) | ${pct(r.ofPeak)} |`),
  '', `Training: ${steps} steps of the reference recipe (${result.onednn.version ?? 'oneDNN'}, ${result.onednn.runtime ?? '?'} runtime, ` +
    `ISA: ${result.onednn.isa ?? 'unknown'}); the convolutions, each figure at the median call (and at the fastest):`, '',
  '| layer | pass | threads | oneDNN kernel | problem | calls a step | ms a call | GFLOP/s | % of the fp32 peak |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
// Each convolution pass, on each thread count (a pass may run more than one kernel).
const passOf = (p) => `${p.layer}|${p.prop}`
for (const pass of new Set(training.flatMap((r) => r.primitives.filter((p) => p.layer).map(passOf)))) {
  for (const r of training) {
    for (const c of r.primitives.filter((p) => p.layer && passOf(p) === pass)) {
      rows.push(`| ${c.layer} | ${c.prop} | ${r.threads} | ${c.impl} | ${c.problem} | ${c.callsPerStep.toFixed(0)} | ` +
        `${c.msPerCall.toFixed(2)} (${c.bestMsPerCall.toFixed(2)}) | ` +
        `${f1(c.gflops)} (${f1(c.bestGflops)}) | ${pct(c.ofFp32Peak)} (${pct(c.bestOfFp32Peak)}) |`)
    }
  }
}
rows.push('', `The other oneDNN primitives of a step on ${training[0].threads} thread${training[0].threads > 1 ? 's' : ''}:`, '',
  '| primitive | kernel | layouts | problem | calls a step | ms a call, median (fastest) |', '| --- | --- | --- | --- | --- | --- |',
  ...training[0].primitives.filter((p) => !p.layer).map((p) => `| ${p.primitive} | ${p.impl} | ${p.layouts} | ${p.problem} | ` +
    `${p.callsPerStep.toFixed(0)} | ${p.msPerCall.toFixed(3)} (${p.bestMsPerCall.toFixed(3)}) |`), '')
for (const r of training) {
  const byKind = new Map()
  for (const p of r.primitives) {
    const o = byKind.get(p.primitive) ?? { ms: 0, calls: 0 }
    byKind.set(p.primitive, { ms: o.ms + p.msPerStep, calls: o.calls + p.callsPerStep })
  }
  rows.push(`A step's oneDNN time on ${r.threads} thread${r.threads > 1 ? 's' : ''} (medians): ` +
    [...byKind].map(([k, o]) => `${k} ${o.ms.toFixed(2)} ms (${o.calls.toFixed(0)} calls)`).join(', ') +
    `; the fp32 peak there: ${f1(r.fp32Peak)} GFLOP/s.`)
}
rows.push(`Whole run: ${result.minutes.toFixed(1)} minutes.`)
const table = rows.join('\n')
const file = writeResult('peak', date, result, `# The machine's peak, ${date}\n\n${result.machine}. Measured by \`${command}\` ` +
  `(native/bench/peak.cc). LibTorch ${result.versions.libtorch}, ${result.versions.onednn ?? 'oneDNN'}.\n\n${table}\n`)
console.log(table)
console.error(`wrote ${file}.json and .md`)
