#!/usr/bin/env node
// The GPU benchmark (scripts/gpu/run.sh runs it on the GPU machine): siamese-torch against
// PyTorch (Python, eager, our faithful script of the recipe) on the same GPU, interleaved x3, at
// batch 64 (the recipe) and batch 1024; batch-1024 predict throughput; and the GPU's measured
// peak (PyTorch matrix products) to put the figures in proportion. Writes gpu-bench.json and
// gpu-bench.md into the folder given (its $OUT).
// Usage: node scripts/gpu/bench.mjs OUT_DIR   (SIAMESE_TORCH_BENCH_DEVICE: cuda, or cpu for a dry run)
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { datasets, version } from '../../dist/index.mjs'
import { lastJson, median, predictFlopsPerPair, trainFlopsPerPair } from '../bench/common.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const out = process.argv[2] ?? tmpdir()
const device = process.env.SIAMESE_TORCH_BENCH_DEVICE ?? 'cuda'
const python = process.env.SIAMESE_TORCH_BENCH_PYTHON ?? 'python3'
const reps = Number(process.env.SIAMESE_TORCH_BENCH_REPS ?? 3)
const threads = 4
const dataDir = join(root, 'dist', 'data', 'mnist-embedded')

const { test } = await datasets.embedded()
const p = datasets.testPairs(test)
const pairsFile = join(tmpdir(), `siamese-gpu-pairs-${process.pid}.json`)
writeFileSync(pairsFile, JSON.stringify({ left: [...p.left], right: [...p.right], same: [...p.same] }))

// The GPU's peak as PyTorch reaches it: large matrix products, fp32 (TF32 off), TF32 and bf16.
const peakScript = `
import json, time, torch
def tflops(dtype, tf32):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    n = 8192
    a = torch.randn(n, n, device='cuda', dtype=dtype); b = torch.randn(n, n, device='cuda', dtype=dtype)
    for _ in range(3): a @ b
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(10): a @ b
    torch.cuda.synchronize()
    return 10 * 2 * n ** 3 / (time.perf_counter() - t) / 1e12
print(json.dumps({'name': torch.cuda.get_device_name(0), 'fp32': tflops(torch.float32, False),
                  'tf32': tflops(torch.float32, True), 'bf16': tflops(torch.bfloat16, False)}))`
const peak = device === 'cpu' ? null : lastJson(execFileSync(python, ['-c', peakScript], { encoding: 'utf8' }))

const env = (batch) => ({ ...process.env, SIAMESE_TORCH_BENCH_DEVICE: device, SIAMESE_TORCH_BENCH_BATCH: String(batch) })
const ours = (batch, seed, args = [], extraEnv = {}) => lastJson(execFileSync(process.execPath,
  [join(root, 'scripts', 'bench', 'ours.mjs'), String(threads), String(seed), ...args], { encoding: 'utf8', env: { ...env(batch), ...extraEnv } }))
const pytorch = (batch, seed, args = []) => {
  const s = lastJson(execFileSync(python, [join(root, 'scripts', 'bench', 'reference.py'), '--data', dataDir, '--pairs', pairsFile,
    '--epochs', '1', '--threads', String(threads), '--seed', String(seed), '--device', device, '--batch-size', String(batch), ...args],
  { encoding: 'utf8' }))
  const h = s.history[0]
  return { tool: 'pytorch', torch: s.torch, trainPairsPerSecond: h.pairsPerSecond, testAccuracy: h.testAccuracy, evalPairsPerSecond: h.evalPairsPerSecond }
}

const results = []
for (const batch of [64, 1024]) {
  const runs = { ours: [], pytorch: [] }
  for (let r = 0; r < reps; r++) {
    runs.ours.push(ours(batch, r))
    runs.pytorch.push(pytorch(batch, r))
    console.error(`batch ${batch}, rep ${r + 1}: siamese-torch ${runs.ours.at(-1).trainPairsPerSecond.toFixed(0)}, ` +
      `PyTorch ${runs.pytorch.at(-1).trainPairsPerSecond.toFixed(0)} pairs/s`)
  }
  const m = (tool, key) => median(runs[tool].map((x) => x[key]))
  const train = { ours: m('ours', 'trainPairsPerSecond'), pytorch: m('pytorch', 'trainPairsPerSecond') }
  results.push({
    batch,
    runs,
    train,
    ratio: train.ours / train.pytorch,
    accuracy: { ours: m('ours', 'testAccuracy'), pytorch: m('pytorch', 'testAccuracy') },
    eval: { ours: m('ours', 'evalPairsPerSecond'), pytorch: m('pytorch', 'evalPairsPerSecond') },
    predictMedianMs: m('ours', 'predictMedianMs'),
    batch1024PredictPairsPerSecond: m('ours', 'batch1024PairsPerSecond'),
    trainTflops: (train.ours * trainFlopsPerPair) / 1e12
  })
}
// Batch 64 as far as each side goes: our step captured as a CUDA graph (cudaGraph), bf16 with and
// without it, against PyTorch's eager step batched (one forward of a step's images, the memory
// format probed) in fp32 and under bf16 autocast. The target: our best at least 3x PyTorch's
// eager recipe (the fp32 table's PyTorch column).
const variantReps = Number(process.env.SIAMESE_TORCH_BENCH_VARIANT_REPS ?? 2)
const bestArgs = ['--batched', '--memory-format', 'auto']
const variants = device === 'cpu'
  ? []
  : [
      ['siamese-torch, CUDA graph', (seed) => ours(64, seed, [], { SIAMESE_TORCH_BENCH_CUDA_GRAPH: '1' })],
      ['siamese-torch bf16', (seed) => ours(64, seed, ['--precision', 'bf16'])],
      ['siamese-torch bf16, CUDA graph', (seed) => ours(64, seed, ['--precision', 'bf16'], { SIAMESE_TORCH_BENCH_CUDA_GRAPH: '1' })],
      ['PyTorch batched fp32', (seed) => pytorch(64, seed, bestArgs)],
      ['PyTorch batched bf16 autocast', (seed) => pytorch(64, seed, [...bestArgs, '--precision', 'bf16'])]
    ]
const variantResults = []
for (const [name, runOnce] of variants) {
  const runs = []
  for (let r = 0; r < variantReps; r++) {
    try {
      runs.push(runOnce(r))
    } catch (err) {
      runs.push({ error: String(err.stderr ?? err.message).slice(-2000) })
    }
    console.error(`batch 64, ${name}, rep ${r + 1}: ${runs.at(-1).trainPairsPerSecond?.toFixed(0) ?? runs.at(-1).error}`)
  }
  const ok = runs.filter((x) => x.error === undefined && x.skipped === undefined)
  variantResults.push({
    name,
    runs,
    train: ok.length > 0 ? median(ok.map((x) => x.trainPairsPerSecond)) : null,
    accuracy: ok.length > 0 ? median(ok.map((x) => x.testAccuracy)) : null,
    vsPytorchEager: ok.length > 0 ? median(ok.map((x) => x.trainPairsPerSecond)) / results[0].train.pytorch : null
  })
}

const big = results[1]
const result = {
  date: new Date().toISOString().slice(0, 10),
  device,
  gpu: peak,
  versions: { ...version(), pytorch: results[0].runs.pytorch[0].torch },
  method: `reference recipe, 1 epoch of 5,000 reference triplets on the embedded digits, interleaved x${reps}, medians; fp32`,
  results,
  batch64Variants: variantResults,
  fractionOfPeak: peak && {
    trainBatch1024OfFp32: big.trainTflops / peak.fp32,
    trainBatch1024OfTf32: big.trainTflops / peak.tf32,
    predictBatch1024OfFp32: (big.batch1024PredictPairsPerSecond * predictFlopsPerPair) / 1e12 / peak.fp32
  }
}
const rows = ['| batch | siamese-torch pairs/s | PyTorch pairs/s | ratio | accuracy (ours / PyTorch) | eval pairs/s (ours / PyTorch) | training TFLOP/s |',
  '| --- | --- | --- | --- | --- | --- | --- |',
  ...results.map((r) => `| ${r.batch} | ${r.train.ours.toFixed(0)} | ${r.train.pytorch.toFixed(0)} | ${r.ratio.toFixed(2)}x | ` +
    `${(100 * r.accuracy.ours).toFixed(2)}% / ${(100 * r.accuracy.pytorch).toFixed(2)}% | ${r.eval.ours.toFixed(0)} / ${r.eval.pytorch.toFixed(0)} | ${r.trainTflops.toFixed(2)} |`),
  '', `Single-pair predict median ${results[0].predictMedianMs.toFixed(2)} ms; batch-1024 predict ${big.batch1024PredictPairsPerSecond.toFixed(0)} pairs/s.`,
  peak
    ? `GPU: ${peak.name}; measured peak ${peak.fp32.toFixed(1)} TFLOP/s fp32, ${peak.tf32.toFixed(1)} TF32, ${peak.bf16.toFixed(1)} bf16. ` +
    `Batch-1024 training reaches ${(100 * result.fractionOfPeak.trainBatch1024OfFp32).toFixed(1)}% of the fp32 peak; ` +
    `batch-1024 predict ${(100 * result.fractionOfPeak.predictBatch1024OfFp32).toFixed(1)}%.`
    : 'Dry run on the CPU: no GPU peak.']
if (variantResults.length > 0) {
  rows.push('', `Batch 64, medians of ${variantReps}; the ratio is to PyTorch's eager recipe above (${results[0].train.pytorch.toFixed(0)} pairs/s):`, '',
    '| variant | pairs/s | / PyTorch eager | accuracy |', '| --- | --- | --- | --- |',
    ...variantResults.map((v) => v.train === null
      ? `| ${v.name} | failed: ${(v.runs[0].error ?? v.runs[0].skipped ?? '').split('\n').filter(Boolean).at(-1)} | | |`
      : `| ${v.name} | ${v.train.toFixed(0)} | ${v.vsPytorchEager.toFixed(2)}x | ${(100 * v.accuracy).toFixed(2)}% |`))
}
writeFileSync(join(out, 'gpu-bench.json'), `${JSON.stringify(result, null, 2)}\n`)
writeFileSync(join(out, 'gpu-bench.md'), `# GPU benchmark, ${result.date}\n\n${result.method}.\n\n${rows.join('\n')}\n`)
console.log(rows.join('\n'))
