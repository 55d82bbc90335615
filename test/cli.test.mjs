// The command line: every command on tiny data, text and --json, exit codes, files written.
import t from 'tap'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import sharp from 'sharp'
import { version } from 'siamese-torch'
import { node } from './helpers/run.mjs'
import { smallDigits, writeIdxFolder } from './helpers/small-data.mjs'

const cli = (args, options) => node(['dist/cli.js', ...args], options)
const scratch = mkdtempSync(join(tmpdir(), 'siamese-cli-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

// A tiny IDX data set on disk, as users would pass with --data.
const data = await smallDigits()
const idxDir = join(scratch, 'tiny-idx')
mkdirSync(idxDir)
writeIdxFolder(idxDir, data)

// PNGs of a few test digits, and a support folder of two classes.
async function png (file, set, i) {
  await sharp(Buffer.from(set.images.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(file)
  return file
}
const firstOf = (digit) => { for (let i = 0; i < data.test.count; i++) if (data.test.labels[i] === digit) return i }
const a = await png(join(scratch, 'a.png'), data.test, firstOf(3))
const b = await png(join(scratch, 'b.png'), data.test, firstOf(7))
const support = join(scratch, 'support')
for (const digit of [3, 7]) {
  mkdirSync(join(support, `digit-${digit}`), { recursive: true })
  let n = 0
  for (let i = 0; i < data.train.count && n < 3; i++) if (data.train.labels[i] === digit) await png(join(support, `digit-${digit}`, `${n++}.png`), data.train, i)
}

const outDir = join(scratch, 'out')
const modelFile = join(outDir, 'model.safetensors')

t.test('train --json: one JSON object per event, nothing else; files written', async (t) => {
  const r = cli(['train', '--data', idxDir, '--epochs', '2', '--save-every', '1', '--out', outDir, '--json', '--seed', '1'])
  t.equal(r.status, 0, r.stderr)
  const events = r.stdout.trim().split('\n').map((line) => JSON.parse(line))
  t.ok(events.some((e) => e.type === 'batch'))
  t.same(events.filter((e) => e.type === 'epoch').map((e) => e.epoch), [1, 2])
  const done = events.at(-1)
  t.equal(done.type, 'done')
  t.equal(done.history.length, 2)
  for (const f of ['model.safetensors', 'checkpoint-epoch-1.safetensors', 'checkpoint-epoch-2.safetensors', 'metrics.json', 'metrics.csv']) {
    t.ok(existsSync(join(outDir, f)), `wrote ${f}`)
    t.ok(done.files.includes(join(outDir, f)), `lists ${f}`)
  }
  // Pictures: each SVG next to a PNG that decodes, at twice the SVG's size.
  for (const picture of ['curves', 'pairs', 'embeddings']) {
    const svg = readFileSync(join(outDir, `${picture}.svg`), 'utf8')
    const [, width, height] = /<svg[^>]* width="(\d+(?:\.\d+)?)" height="(\d+(?:\.\d+)?)"/.exec(svg) ?? []
    t.ok(width && height, `${picture}.svg has a size`)
    const meta = await sharp(join(outDir, `${picture}.png`)).metadata()
    t.equal(meta.format, 'png', `${picture}.png decodes`)
    t.ok(Math.abs(meta.width - 2 * Number(width)) <= 2 && Math.abs(meta.height - 2 * Number(height)) <= 2,
      `${picture}.png is ${meta.width}x${meta.height}, twice the SVG's ${width}x${height}`)
    t.ok(done.files.includes(join(outDir, `${picture}.png`)), `lists ${picture}.png`)
  }
  t.match(readFileSync(join(outDir, 'pairs.svg'), 'utf8'), /P\(same\) \d\.\d\d [\u2713\u2717]/, 'the pairs sheet shows probabilities and verdicts')
  t.equal((readFileSync(join(outDir, 'pairs.svg'), 'utf8').match(/<image /g) ?? []).length, 64, '32 pairs, two images each')
  const csv = readFileSync(join(outDir, 'metrics.csv'), 'utf8').trim().split('\n')
  t.equal(csv[0], 'epoch,trainLoss,trainAccuracy,testLoss,testAccuracy,auc,threshold,seconds,pairsPerSecond,testClasses,unseenClasses')
  t.equal(csv.length, 3)
  t.same(JSON.parse(readFileSync(join(outDir, 'metrics.json'), 'utf8')), done.history)
  // The history has the shape train() returns: EpochMetrics, without an event's `type`.
  const keys = ['auc', 'epoch', 'pairsPerSecond', 'seconds', 'testAccuracy', 'testClasses', 'testLoss', 'threshold', 'trainAccuracy', 'trainLoss', 'unseenClasses']
  for (const h of done.history) t.same(Object.keys(h).sort(), keys, `epoch ${h.epoch} of the history is an EpochMetrics`)
})

t.test('train without a terminal: plain lines and a summary', async (t) => {
  const dir = join(scratch, 'text')
  const r = cli(['train', '--data', idxDir, '--epochs', '1', '--out', dir, '--loss', 'contrastive', '--margin', '2'])
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /^training on .*; writing to /)
  t.match(r.stdout, /epoch 1\/1 {2}train loss \d+\.\d{4} {2}test loss \d+\.\d{4} {2}accuracy \d+\.\d\d% {2}AUC \d\.\d{4}/)
  t.match(r.stdout, /epoch {2}train loss {2}test loss {2}accuracy {2}AUC/)
  t.match(r.stdout, `written:\n  ${join(dir, 'curves.png')}\n`)
  for (const f of ['metrics.csv', 'model.safetensors', 'pairs.png', 'embeddings.svg']) t.match(r.stdout, `\n  ${join(dir, f)}\n`)
  t.notOk(r.stdout.includes('\u001b['), 'no terminal escapes')
})

t.test('eval, compare, classify, embed', async (t) => {
  const rocDir = join(scratch, 'roc')
  const evalText = cli(['eval', modelFile, '--data', idxDir, '--ways', '5', '--shots', '2', '--episodes', '200', '--out-dir', rocDir])
  t.equal(evalText.status, 0, evalText.stderr)
  t.match(evalText.stdout, /accuracy {3}\d+\.\d\d%/)
  t.match(evalText.stdout, /5-way 2-shot accuracy {2}\d+\.\d\d% \+- \d+\.\d\d% \(200 episodes, 1 query a class\)/)
  for (const line of [/fixed test pairs: \d+ same, \d+ different/, /all pairs: \d+ same, \d+ different/, /AUC {6}0\.\d{4}/, /EER {6}\d+\.\d\d% at threshold/,
    /TAR@FAR=0\.1 {4}\d+\.\d\d%/, /TAR@FAR=0\.001 {2}n\/a/, /retrieval: \d+ queries, P@1 \d+\.\d\d%, R-precision \d+\.\d\d%, MAP@R \d+\.\d\d%/]) {
    t.match(evalText.stdout, line)
  }
  t.match(evalText.stdout, `ROC curve  ${join(rocDir, 'roc.svg')}, ${join(rocDir, 'roc.png')}`)
  const roc = await sharp(join(rocDir, 'roc.png')).metadata()
  t.ok(roc.width > 1000 && roc.height > 500, `roc.png ${roc.width}x${roc.height}`)
  t.match(readFileSync(join(rocDir, 'roc.svg'), 'utf8'), /all pairs: AUC 0\.\d{3}, EER \d+\.\d%/)
  const evalJson = JSON.parse(cli(['eval', modelFile, '--data', idxDir, '--json', '--all-pairs', 'no', '--test-seed', '3']).stdout)
  t.equal(evalJson.oneShotWays, 10)
  t.equal(evalJson.verification.allPairs, null, '--all-pairs no')
  t.ok(evalJson.accuracy > 0.5)
  t.same(evalJson.pictures, [join(dirname(modelFile), 'roc.svg'), join(dirname(modelFile), 'roc.png')], "drawn in the model's folder by default")
  t.not(cli(['eval', modelFile, '--data', idxDir, '--shots', '0']).status, 0, '--shots 0 refused')
  // A model's folder where the picture cannot be written (here: a folder in roc.svg's place): the
  // metrics all the same, and a warning.
  const blocked = join(scratch, 'blocked')
  mkdirSync(join(blocked, 'roc.svg'), { recursive: true })
  copyFileSync(modelFile, join(blocked, 'model.safetensors'))
  const warned = cli(['eval', join(blocked, 'model.safetensors'), '--data', idxDir, '--ways', '0'])
  t.equal(warned.status, 0, warned.stderr)
  t.match(warned.stdout, /AUC {6}0\.\d{4}/)
  t.notMatch(warned.stdout, /ROC curve/)
  t.match(warned.stderr, `the ROC curve was not drawn in ${blocked}`)
  t.not(cli(['eval', modelFile, '--data', idxDir, '--ways', '0', '--out-dir', join(modelFile, 'x')]).status, 0,
    'a folder given that cannot be used: an error')

  const same = JSON.parse(cli(['compare', modelFile, a, a, '--json']).stdout)
  t.ok(same.pSame > 0.5, `an image with itself: ${same.pSame}`)
  const text = cli(['compare', modelFile, a, b])
  t.match(text.stdout, /^P\(same\) = 0\.\d{4}\n$/)

  const classified = cli(['classify', modelFile, a, b, '--support', support, '--json'])
  t.equal(classified.status, 0, classified.stderr)
  const verdicts = classified.stdout.trim().split('\n').map((l) => JSON.parse(l))
  t.same(verdicts.map((v) => v.query), [a, b])
  t.same(Object.keys(verdicts[0].scores), ['digit-3', 'digit-7'])

  const json = join(scratch, 'e.json')
  t.equal(cli(['embed', modelFile, a, b, '--out', json]).status, 0)
  const rows = JSON.parse(readFileSync(json, 'utf8'))
  t.same(rows.map((r) => [r.image, r.embedding.length]), [[a, 512], [b, 512]])
  const npy = join(scratch, 'e.npy')
  t.equal(cli(['embed', modelFile, a, b, '--out', npy]).status, 0)
  const bytes = readFileSync(npy)
  t.equal(bytes.subarray(0, 6).toString('latin1'), '\x93NUMPY')
  const headerLength = bytes.readUInt16LE(8)
  t.equal((10 + headerLength) % 64, 0, 'data aligned to 64 bytes')
  t.match(bytes.subarray(10, 10 + headerLength).toString('latin1'), "'shape': (2, 512)")
  t.equal(bytes.length, 10 + headerLength + 2 * 512 * 4)
  t.equal(bytes.readFloatLE(10 + headerLength), rows[0].embedding[0])
})

t.test('info prints the versions', async (t) => {
  const v = version()
  const r = cli(['info'])
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, new RegExp(`LibTorch\\s+${v.libtorch.replace(/\./g, '\\.')} \\((CPU|CUDA) build, found via ${v.libtorchSource}\\)`))
  t.same(JSON.parse(cli(['info', '--json']).stdout), v)
  t.equal(cli(['--version']).stdout.trim(), v.siameseTorch)
})

t.test('--help for every command, with an example', async (t) => {
  for (const command of ['train', 'eval', 'compare', 'classify', 'embed', 'info']) {
    const r = cli([command, '--help'])
    t.equal(r.status, 0, command)
    t.match(r.stdout, /Example:\n {2}siamese-torch /, `${command} --help has an example`)
  }
})

t.test('usage errors: one line, exit 2; runtime failures: code and message, exit 1, no stack', async (t) => {
  for (const args of [['bogus'], ['train', '--bogus'], ['train', '--epochs', 'x'], ['train', '--loss', 'hinge'], ['compare'], ['embed', modelFile, a, '--out', join(scratch, 'e.txt')]]) {
    const r = cli(args)
    t.equal(r.status, 2, `siamese-torch ${args.join(' ')}`)
    t.equal(r.stdout, '')
    t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr.trim()}`)
  }
  const missing = cli(['compare', join(scratch, 'nope.safetensors'), a, b])
  t.equal(missing.status, 1)
  t.equal(missing.stderr, `siamese-torch: ERR_BAD_FILE: ${join(scratch, 'nope.safetensors')}: file not found\n`)
  const verbose = cli(['compare', join(scratch, 'nope.safetensors'), a, b, '--verbose'])
  t.match(verbose.stderr, /\n\s+at /, '--verbose shows the stack')
  const load = cli(['info'], { env: { SIAMESE_TORCH_ADDON: '/nonexistent/siamese_torch.node' } })
  t.equal(load.status, 1)
  t.match(load.stderr, /^siamese-torch: ERR_ADDON_LOAD: /)
})

t.test('Ctrl-C stops between batches and prints the command that continues the same run', async (t) => {
  const { spawn } = await import('node:child_process')
  const dir = join(scratch, 'interrupted')
  const child = spawn(process.execPath, ['dist/cli.js', 'train', '--data', idxDir, '--epochs', '20', '--save-every', '1', '--out', dir, '--json'],
    { env: { ...process.env, NODE_OPTIONS: '' } })
  let stdout = ''
  let sent = false
  child.stdout.on('data', (chunk) => {
    stdout += chunk
    if (!sent && stdout.includes('"type":"file"')) {
      sent = true
      child.kill('SIGINT')
    }
  })
  const code = await new Promise((resolve) => child.on('exit', (c) => resolve(c)))
  t.equal(code, 130)
  const last = JSON.parse(stdout.trim().split('\n').at(-1))
  t.equal(last.type, 'stopped')
  t.equal(last.lastCheckpoint, join(dir, 'checkpoint-epoch-1.safetensors'))
  t.ok(existsSync(last.lastCheckpoint), 'the checkpoint is there')
  // The hint names the data and the folder: run as printed, it continues the same run.
  t.equal(last.resume, `siamese-torch train --resume ${last.lastCheckpoint} --data ${idxDir} --out ${dir}`)
  const resumed = cli([...last.resume.split(' ').slice(1), '--epochs', '2', '--json'])
  t.equal(resumed.status, 0, resumed.stderr)
  t.same(JSON.parse(resumed.stdout.trim().split('\n').at(-1)).history.map((h) => h.epoch), [2], 'and resumes from it')
  // Without --data, the checkpoint's own data; with other data, refused.
  const other = cli(['train', '--resume', last.lastCheckpoint, '--data', 'embedded', '--out', join(scratch, 'other')])
  t.equal(other.status, 2)
  t.match(other.stderr, /^siamese-torch: ERR_INVALID_ARG: the data is not the data the checkpoint was trained on/)
})

t.test('--resume keeps the checkpoint\'s options: only typed flags override', async (t) => {
  // A run far from every default; resumed through the command line with no option but --out, it
  // must end with the same weights as when it runs through.
  const flags = ['--data', idxDir, '--optimizer', 'sgd', '--loss', 'triplet', '--mining', 'semi-hard', '--lr', '0.02',
    '--batch-size', '24', '--seed', '11', '--threads', '1', '--momentum', '0.5', '--epochs', '2', '--save-every', '1']
  const through = join(scratch, 'through')
  t.equal(cli(['train', ...flags, '--out', through]).status, 0)
  const resumedDir = join(scratch, 'resumed-cli')
  const resumed = cli(['train', '--resume', join(through, 'checkpoint-epoch-1.safetensors'), '--out', resumedDir, '--json'])
  t.equal(resumed.status, 0, resumed.stderr)
  t.same(JSON.parse(resumed.stdout.trim().split('\n').at(-1)).history.map((h) => h.epoch), [2], 'one epoch left to run')
  const weights = (file) => { const b = readFileSync(file); return b.subarray(8 + Number(b.readBigUInt64LE(0))) }
  t.ok(weights(join(through, 'model.safetensors')).equals(weights(join(resumedDir, 'model.safetensors'))), 'bit-identical weights')
  // A typed flag does override, and one that would rebuild the model is refused.
  const typed = cli(['train', '--resume', join(through, 'checkpoint-epoch-1.safetensors'), '--out', join(scratch, 'typed'), '--epochs', '3', '--json'])
  t.same(JSON.parse(typed.stdout.trim().split('\n').at(-1)).history.map((h) => h.epoch), [2, 3], '--epochs 3 wins over the recorded 2')
  const rebuild = cli(['train', '--resume', join(through, 'checkpoint-epoch-1.safetensors'), '--loss', 'contrastive'])
  t.equal(rebuild.status, 2)
  t.match(rebuild.stderr, /no loss with resume/)
})

t.test('output files that cannot be written are refused first, with a code and the path', async (t) => {
  const file = join(scratch, 'a-file')
  writeFileSync(file, 'x')
  const train = cli(['train', '--data', idxDir, '--epochs', '1', '--out', file])
  t.equal(train.status, 1)
  t.equal(train.stderr, `siamese-torch: ERR_BAD_FILE: outDir: ${file} is not a folder (a file is in the way)\n`)
  const proc = cli(['train', '--data', idxDir, '--epochs', '1', '--out', '/proc/siamese-out'])
  t.match(proc.stderr, /^siamese-torch: ERR_BAD_FILE: outDir: \/proc\/siamese-out cannot be made/)
  const missing = join(scratch, 'no-such-folder', 'e.json')
  const embed = cli(['embed', modelFile, a, '--out', missing])
  t.equal(embed.status, 1)
  t.equal(embed.stderr, `siamese-torch: ERR_BAD_FILE: --out: ${missing} cannot be written: ${join(scratch, 'no-such-folder')} is not an existing folder\n`)
})
