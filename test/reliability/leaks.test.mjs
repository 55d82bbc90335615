// Leaks: 10,000 predict calls on one model, and 30 cycles of create / train one epoch / predict /
// save / load / dispose, each in a child process (run with --expose-gc, so that every reading
// follows a garbage collection). Resident memory (VmRSS) must reach a plateau: after a warm-up,
// it may grow by less than 30 MiB over the last 5,000 calls or the last 10 cycles. Training on
// two or more threads spreads small tensors over several malloc arenas, whose fragmentation
// settles after about 15 cycles (measured: +100 MiB by then, flat over the next 45). The caching CPU allocator's live bytes
// return to their baseline after every dispose (its idle blocks are a bounded cache, reported),
// and training leaves nothing in the model beyond its weights.
import t from 'tap'
import { childScript, ending, jsonLines, runChild, scratchDir } from './common.mjs'

const BOUND_MIB = 30
const scratch = scratchDir(t, 'leaks')

function leakChild (mode) {
  return runChild(process.execPath, ['--expose-gc', childScript('leaks.mjs'), mode, scratch], { timeoutMs: 240_000 })
}

const fmt = (x) => x.toFixed(1)

t.test('10,000 predict calls: resident memory reaches a plateau', async (t) => {
  const result = await leakChild('predict')
  t.same([result.code, result.signal], [0, null], ending(result))
  const lines = jsonLines(result.stdout)
  t.ok(lines.at(-1)?.done, 'all 10,000 calls answered, each the same')
  const samples = lines.filter((l) => typeof l.step === 'number')
  const at = (step) => samples.find((s) => s.step === step)
  const warm = at(2000)
  const half = at(5000)
  const end = at(10_000)
  t.ok(warm && half && end, 'readings at 2,000, 5,000 and 10,000 calls')
  if (!(warm && half && end)) return
  const lastHalf = samples.filter((s) => s.step >= 5000).map((s) => s.rss)
  const growth = Math.max(...lastHalf) - half.rss
  t.comment(`RSS (MiB) at 0 / 2,000 / 5,000 / 10,000 calls: ${[at(0), warm, half, end].map((s) => fmt(s.rss)).join(' / ')}; ` +
    `largest rise over the last 5,000 calls ${fmt(growth)} MiB; took ${(result.ms / 1000).toFixed(1)} s`)
  t.comment(`RSS every 500 calls: ${samples.map((s) => fmt(s.rss)).join(' ')}`)
  t.ok(growth < BOUND_MIB, `growth over the last 5,000 calls ${fmt(growth)} MiB < ${BOUND_MIB} MiB`)
  const disposed = lines.find((l) => l.step === 'disposed')
  t.equal(disposed?.liveMiB, 0, 'after dispose the allocator holds no live blocks')
})

t.test('30 create/train/save/load/dispose cycles: a plateau, and live bytes back to baseline', async (t) => {
  const result = await leakChild('cycles')
  t.same([result.code, result.signal], [0, null], ending(result))
  const lines = jsonLines(result.stdout)
  t.ok(lines.at(-1)?.done, 'all 30 cycles ran')
  const baseline = lines.find((l) => 'baselineLiveMiB' in l)?.baselineLiveMiB
  const live = lines.filter((l) => 'liveAfterDisposeMiB' in l)
  t.equal(live.length, 30)
  for (const l of live) t.equal(l.liveAfterDisposeMiB, baseline, `cycle ${l.cycle}: live bytes back to the baseline (${fmt(baseline)} MiB) after dispose`)
  // Before the fix, a trained model kept its gradients: twice its weights' memory.
  const trained = lines.filter((l) => 'liveTrainedMiB' in l)
  t.equal(trained.length, 30)
  t.ok(trained.every((l) => l.liveTrainedMiB === l.liveCreatedMiB),
    `after training, the model holds what it held when created (${fmt(trained[0]?.liveCreatedMiB ?? NaN)} MiB of large blocks): no gradients kept`)
  const samples = lines.filter((l) => typeof l.step === 'number')
  const rss = (cycle) => samples.find((s) => s.step === cycle)?.rss
  const growth = Math.max(...samples.filter((s) => s.step >= 20).map((s) => s.rss)) - rss(20)
  t.comment(`RSS (MiB) at cycles 0 / 10 / 20 / 30: ${[0, 10, 20, 30].map((c) => fmt(rss(c))).join(' / ')}; ` +
    `largest rise over the last 10 cycles ${fmt(growth)} MiB; idle cache at the end ${fmt(samples.at(-1).idleMiB)} MiB; took ${(result.ms / 1000).toFixed(1)} s`)
  t.comment(`RSS per cycle: ${samples.map((s) => fmt(s.rss)).join(' ')}`)
  t.ok(growth < BOUND_MIB, `growth over the last 10 cycles ${fmt(growth)} MiB < ${BOUND_MIB} MiB`)
})
