// Malformed files never crash the process: model files, checkpoints and IDX files truncated at
// many offsets, with bytes flipped (seeded), with headers that lie, tensors that do not fit,
// metadata that is wrong, and things that are not model files at all (a PyTorch pickle, an
// empty file, a directory, a FIFO). Each is refused with ERR_BAD_FILE naming the file, or (a
// flip that leaves valid, finite data) loads and predicts. The sweep runs in a child process,
// which must exit normally; claims of huge sizes must not make it allocate them.
import t from 'tap'
import { childScript, ending, jsonLines, nodeChild, scratchDir } from './common.mjs'

const scratch = scratchDir(t, 'malformed')
const result = await nodeChild(childScript('malformed-sweep.mjs'), [scratch], { timeoutMs: 180_000 })
const lines = jsonLines(result.stdout)
const cases = lines.filter((l) => 'outcome' in l)
const done = lines.find((l) => l.done)

t.test('the sweep runs to its end in a child process that exits normally', async (t) => {
  t.equal(result.signal, null, `no signal (${ending(result)})`)
  t.equal(result.code, 0, ending(result))
  t.ok(done, `the child printed its last line after ${cases.length} cases (last: ${JSON.stringify(cases.at(-1)?.name)})`)
  t.comment(`cases per group: ${JSON.stringify(done?.counts)}`)
  t.comment(`child took ${(result.ms / 1000).toFixed(1)} s; resident ${done?.rss.toFixed(0)} MiB, peak ${done?.hwm.toFixed(0)} MiB`)
})

// Groups where every case must be refused; in the others a case may also load.
const mustRefuse = new Set(['huge', 'truncated model', 'truncated checkpoint', 'truncated checkpoint (resume)',
  'checkpoint', 'not a model', 'idx truncated', 'idx huge', 'idx other'])
const mayLoad = new Set(['padded with spaces (valid)', 'a huge finite weight (valid)', 'classes not JSON (valid: classes is optional)'])

const groups = [...new Set(cases.map((c) => c.group))]
for (const group of groups) {
  t.test(group, async (t) => {
    const mine = cases.filter((c) => c.group === group)
    let refused = 0
    for (const c of mine) {
      if (c.outcome === 'loaded') {
        t.notOk(mustRefuse.has(group) && !mayLoad.has(c.name), `${c.name}: loaded (P = ${c.p})`)
        t.ok(c.p === null || typeof c.p === 'number', `${c.name}: a model that loads also predicts`)
        continue
      }
      refused++
      // One assertion per case, with everything needed to see what went wrong.
      const right = c.outcome === 'ERR_BAD_FILE' && c.siamese && c.errPath === c.path && c.message.includes(c.path)
      t.ok(right, `${c.name}: ${c.outcome}${c.siamese ? '' : ' (not a SiameseTorchError)'}: ${c.message}` +
        (c.errPath === c.path ? '' : ` [err.path ${c.errPath}]`))
    }
    for (const name of mayLoad) {
      const c = mine.find((x) => x.name === name)
      if (c) t.equal(c.outcome, 'loaded', `${name}: a valid file still loads`)
    }
    t.comment(`${mine.length} cases: ${refused} refused with ERR_BAD_FILE, ${mine.length - refused} loaded`)
  })
}

t.test('some flips leave a loadable file, some do not: the sweep tests both paths', async (t) => {
  for (const group of ['flipped model', 'flipped checkpoint', 'idx flipped']) {
    const mine = cases.filter((c) => c.group === group)
    const loaded = mine.filter((c) => c.outcome === 'loaded').length
    t.ok(loaded > 0 && loaded < mine.length, `${group}: ${loaded} of ${mine.length} loaded`)
  }
})

t.test('claims of 10^12 elements (and of 4096x4096 inputs, 2^32 IDX images) allocate nothing', async (t) => {
  // Measured in the child before it trained anything: its resident peak (VmHWM) would show any
  // allocation of what the files claim. Before the fix, a 9 MB file claiming a 2048x2048 input
  // took 8 GiB and 33 s to refuse.
  const memory = lines.find((l) => l.group === 'huge' && l.memory)?.memory
  t.ok(memory, 'memory was measured')
  if (memory) {
    t.comment(`resident peak ${memory.hwmBefore.toFixed(0)} -> ${memory.hwmAfter.toFixed(0)} MiB, ` +
      `resident ${memory.rssBefore.toFixed(0)} -> ${memory.rssAfter.toFixed(0)} MiB over ` +
      `${cases.filter((c) => c.group === 'huge' || c.group === 'idx huge').length} cases`)
    t.ok(memory.hwmAfter - memory.hwmBefore < 64, `the peak grew by ${(memory.hwmAfter - memory.hwmBefore).toFixed(1)} MiB (< 64 MiB)`)
    t.ok(memory.rssAfter - memory.rssBefore < 64, `resident memory grew by ${(memory.rssAfter - memory.rssBefore).toFixed(1)} MiB (< 64 MiB)`)
  }
  for (const s of lines.filter((l) => l.skipped)) t.comment(`skipped: ${s.skipped}`)
})
