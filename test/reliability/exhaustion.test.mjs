// Resource exhaustion. Out of memory, with both CPU allocators (the caching one, and LibTorch's
// own with SIAMESE_TORCH_CPU_ALLOCATOR=system), in a child whose address space is capped: a
// training step, a predict and a model too large each reject with ERR_TORCH_OOM, and the
// process and the model carry on (same answers, a small training run afterwards, the
// allocator's live bytes back where they were). Before the fix, the system allocator's failure
// came out as ERR_TORCH. A full disk (a file size limit, ulimit -f, in a child) while saving
// over a good file, and while writing checkpoints: rejects with ERR_BAD_FILE naming the file,
// and the good file keeps its bytes. The same on a disk that is really full: a small tmpfs,
// where CI runs as root (skipped, with the reason, where mounting is refused).
import t from 'tap'
import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { createModel, loadModel } from 'siamese-torch'
import { bashChild, childScript, ending, jsonLines, nodeChild, scratchDir, tinyDigits } from './common.mjs'

const scratch = scratchDir(t, 'exhaustion')

for (const allocator of ['caching', 'system']) {
  t.test(`out of memory with the ${allocator} CPU allocator: ERR_TORCH_OOM, and everything survives`, async (t) => {
    const env = allocator === 'system' ? { SIAMESE_TORCH_CPU_ALLOCATOR: 'system' } : { SIAMESE_TORCH_CPU_ALLOCATOR: '' }
    const result = await nodeChild(childScript('oom.mjs'), ['run'], { timeoutMs: 120_000, env })
    t.same([result.code, result.signal], [0, null], `the process survives and exits normally (${ending(result)})`)
    const lines = jsonLines(result.stdout)
    const setup = lines.find((l) => l.allocator)
    t.equal(setup?.allocator, allocator, 'the allocator asked for is the one in use')
    t.comment(`address space capped at ${setup?.limitMiB.toFixed(0)} MiB (${setup?.vmSizeMiB.toFixed(0)} MiB in use + 1.25 GiB)`)
    const cases = lines.filter((l) => l.name)
    t.equal(cases.length, 3, 'three allocations too large')
    for (const c of cases) {
      t.equal(c.outcome, 'ERR_TORCH_OOM', `${c.name}: ${c.outcome} after ${c.ms?.toFixed(0)} ms (${c.message})`)
      t.ok(c.same, `${c.name}: the model answers as before (${c.predictAfter})`)
    }
    const end = lines.find((l) => 'smallTraining' in l)
    t.equal(end?.embedding, 8, 'the model still embeds')
    t.equal(end?.smallTraining, 1, 'a small model trains afterwards')
    if (allocator === 'caching') {
      t.equal(end?.liveAfterMiB, end?.liveBeforeMiB, `live allocator bytes back to ${end?.liveBeforeMiB?.toFixed(1)} MiB: the failed jobs freed what they held`)
    }
    t.ok(lines.at(-1)?.done, 'the child ran to its end')
  })
}

t.test('a full disk (file size limit) while saving: ERR_BAD_FILE, and the previous file intact', async (t) => {
  const dir = join(scratch, 'disk')
  mkdirSync(dir)
  const target = join(dir, 'model.safetensors')
  const good = await createModel({ seed: 1 })
  await good.save(target)
  const probe = new Uint8Array(784).fill(100)
  const goodP = await good.predict(probe, new Uint8Array(784))
  good.dispose()
  const hash = (file) => createHash('sha256').update(readFileSync(file)).digest('hex')
  const before = hash(target)
  const outDir = join(dir, 'out')
  const smallFile = join(dir, 'small.safetensors')
  // 6 MiB: a model file is ~8.4 MiB. The child handles SIGXFSZ, so that a write past the limit
  // fails with EFBIG instead of ending the process.
  const script = `trap '' XFSZ; ulimit -f 6144; exec "$NODE" "${childScript('disk-full.mjs')}" "${target}" "${outDir}" "${smallFile}"`
  const result = await bashChild(script, { timeoutMs: 60_000 })
  t.same([result.code, result.signal], [0, null], ending(result))
  const lines = jsonLines(result.stdout)
  const byCase = Object.fromEntries(lines.filter((l) => l.case).map((l) => [l.case, l]))

  const save = byCase['save over a good file']
  t.equal(save?.code, 'ERR_BAD_FILE', `saving rejects: ${save?.code} ${save?.message}`)
  t.equal(save?.path, target, 'the error names the file')
  t.match(save?.message, /File too large/, 'and says why')
  t.equal(hash(target), before, 'the previous file keeps every byte')
  t.ok(byCase['predict afterwards']?.same, 'the model predicts as before the failed save')

  const training = byCase['train with checkpoints']
  t.equal(training?.code, 'ERR_BAD_FILE', `training with checkpoints rejects: ${training?.code} ${training?.message}`)
  t.match(training?.path, /checkpoint-epoch-1\.safetensors$/, 'naming the checkpoint')
  t.same(readdirSync(outDir), [], 'no partial checkpoint in the out folder')
  t.ok(byCase['predict after training']?.p >= 0, 'the model still predicts after the failed run')
  t.equal(byCase['a small file still saves']?.code, 'saved', 'a file under the limit still saves')
  t.same(readdirSync(dir).sort(), ['model.safetensors', 'out', 'small.safetensors'], 'no temporary file left beside the target')

  const reloaded = await loadModel(target)
  t.equal(await reloaded.predict(probe, new Uint8Array(784)), goodP, 'the previous file still loads and predicts as it did')
  reloaded.dispose()
})

// A real full disk, not a file size limit: a small tmpfs mounted for the test (root only). A
// model file is ~8.8 MB; 12 MB hold one, not a second beside it.
async function smallTmpfs (t, dir) {
  if (process.getuid?.() !== 0) return 'not root: mounting a tmpfs needs root'
  mkdirSync(dir, { recursive: true })
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', dir], { encoding: 'utf8' })
  if (mount.status !== 0) return `mount refused here: ${(mount.stderr || mount.error?.message || '').trim()}`
  t.teardown(() => spawnSync('umount', [dir]))
  return undefined
}

t.test('a disk that is really full (a 12 MB tmpfs): ENOSPC as ERR_BAD_FILE, the previous file intact', async (t) => {
  const dir = join(scratch, 'tmpfs')
  const refused = await smallTmpfs(t, dir)
  if (refused !== undefined) {
    t.skip(refused)
    return
  }
  const target = join(dir, 'model.safetensors')
  const model = await createModel({ seed: 4 })
  await model.save(target)
  const hash = (file) => createHash('sha256').update(readFileSync(file)).digest('hex')
  const before = hash(target)
  const err = await model.save(target).then(() => null, (e) => e)
  t.equal(err?.code, 'ERR_BAD_FILE', `saving rejects: ${err?.code} ${err?.message}`)
  t.equal(err?.path, target, 'naming the file')
  t.match(err?.message, /No space left on device/, 'and saying why')
  t.equal(hash(target), before, 'the previous file keeps every byte')
  t.same(readdirSync(dir), ['model.safetensors'], 'nothing else is left on the disk')

  const data = await tinyDigits()
  const outDir = join(dir, 'out')
  const training = await model.train({ data, epochs: 1, saveEvery: 1, outDir }).then(() => null, (e) => e)
  t.equal(training?.code, 'ERR_BAD_FILE', `training with checkpoints rejects: ${training?.code} ${training?.message}`)
  t.match(training?.path, /checkpoint-epoch-1\.safetensors$/, 'naming the checkpoint')
  t.same(readdirSync(outDir), [], 'no partial checkpoint')
  t.equal(hash(target), before, 'the saved model is untouched')
  rmSync(target)
  await model.save(target)
  t.ok((await loadModel(target)).dispose() === undefined, 'with room again, the same model saves and loads')
  model.dispose()
})
