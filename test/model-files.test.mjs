// Model files: what is written, and every way a bad file is refused (ERR_BAD_FILE, never a crash).
import t from 'tap'
import { gzipSync } from 'node:zlib'
import sharp from 'sharp'
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createModel, loadModel, SiameseTorchError } from 'siamese-torch'

const scratch = mkdtempSync(join(tmpdir(), 'siamese-files-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

const model = await createModel({ seed: 1 })
const good = join(scratch, 'good.safetensors')
await model.save(good)
const bytes = readFileSync(good)
const headerLength = Number(bytes.readBigUInt64LE(0))
const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'))
const data = bytes.subarray(8 + headerLength)

// A file from a header object and a data buffer.
function file (name, h = header, d = data, lengthOverride) {
  const json = Buffer.from(JSON.stringify(h))
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(lengthOverride ?? json.length))
  const path = join(scratch, name)
  writeFileSync(path, Buffer.concat([length, json, d]))
  return path
}

async function refused (t, path, message) {
  const err = await loadModel(path).then(() => null, (e) => e)
  t.type(err, SiameseTorchError)
  t.equal(err?.code, 'ERR_BAD_FILE', err?.message)
  t.equal(err?.path, path)
  t.match(err?.message, message)
}

t.test('what a saved model holds: reference tensor names, shapes, metadata', async (t) => {
  const names = Object.keys(header).filter((k) => k !== '__metadata__').sort()
  t.same(names, ['conv1.bias', 'conv1.weight', 'conv2.bias', 'conv2.weight', 'conv3.bias', 'conv3.weight',
    'linear1.bias', 'linear1.weight', 'linear2.bias', 'linear2.weight'])
  t.same(header['conv1.weight'].shape, [64, 1, 7, 7])
  t.same(header['linear1.weight'].shape, [512, 2304])
  t.same(header['linear2.weight'].shape, [2, 512])
  t.equal(header['conv1.weight'].dtype, 'F32')
  const m = header.__metadata__
  t.same({ format: m['siamese_torch.format'], kind: m.kind, architecture: m.architecture, width: m.input_width, loss: m.loss },
    { format: '1', kind: 'model', architecture: 'reference', width: '28', loss: 'pair-ce' })
  t.equal((8 + headerLength) % 8, 0, 'data starts 8-byte aligned')
})

t.test('truncated at many offsets', async (t) => {
  for (const size of [0, 4, 8, 20, 8 + headerLength - 1, 8 + headerLength, 8 + headerLength + 100, bytes.length - 1]) {
    const path = join(scratch, `cut-${size}.safetensors`)
    writeFileSync(path, bytes.subarray(0, size))
    const err = await loadModel(path).then(() => null, (e) => e)
    t.equal(err?.code, 'ERR_BAD_FILE', `cut at ${size}: ${err?.message}`)
  }
})

t.test('headers that lie', async (t) => {
  await refused(t, file('huge-header.safetensors', header, data, 2 ** 40), 'over the 100 MB limit')
  await refused(t, file('long-header.safetensors', header, data, headerLength + data.length + 1), 'larger than the file')
  const notJson = join(scratch, 'not-json2.safetensors')
  const text = Buffer.from('{"__metadata__": nope}')
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(text.length))
  writeFileSync(notJson, Buffer.concat([length, text]))
  await refused(t, notJson, 'header is not valid JSON')
  await refused(t, file('array.safetensors', [1, 2, 3], Buffer.alloc(0)), 'header is not a JSON object')
})

t.test('tensors that do not fit the data or the architecture', async (t) => {
  const clone = () => JSON.parse(JSON.stringify(header))
  let h = clone()
  h['conv1.bias'].data_offsets = [0, 256]
  await refused(t, file('overlap.safetensors', h), /overlaps another|leaves a gap/)
  h = clone()
  h['conv1.bias'].data_offsets = [h['conv1.bias'].data_offsets[0] + 1e12, h['conv1.bias'].data_offsets[1] + 1e12]
  await refused(t, file('out-of-range.safetensors', h), /leaves a gap|cover/)
  h = clone()
  h['conv1.bias'].shape = [1e6, 1e6, 1e6, 1e6]
  await refused(t, file('overflow.safetensors', h), 'has a shape whose size overflows')
  h = clone()
  h['conv1.bias'].dtype = 'F64'
  h['conv1.bias'].shape = [32]
  await refused(t, file('dtype.safetensors', h), 'tensor "conv1.bias" is F64, expected F32')
  h = clone()
  h['conv1.bias'].dtype = 'Q4'
  await refused(t, file('unknown-dtype.safetensors', h), 'unknown dtype "Q4"')
  h = clone()
  h['conv1.bias'].shape = [8, 8]
  await refused(t, file('shape.safetensors', h), 'tensor "conv1.bias" has shape [8, 8], expected [64] for this architecture')
  h = clone()
  h.__metadata__.embedding_size = '256'
  await refused(t, file('arch.safetensors', h), /tensor "linear1.bias" has shape \[512\], expected \[256\]|linear1/)
  h = clone()
  h['extra.weight'] = h['conv1.bias']
  delete h['conv1.bias']
  await refused(t, file('renamed.safetensors', h), /unexpected tensor "extra.weight"|missing tensor/)
})

t.test('metadata that is missing or wrong', async (t) => {
  const clone = () => JSON.parse(JSON.stringify(header))
  let h = clone()
  delete h.__metadata__['siamese_torch.format']
  await refused(t, file('no-format.safetensors', h), 'not a siamese-torch model')
  h = clone()
  h.__metadata__['siamese_torch.format'] = '99'
  await refused(t, file('future.safetensors', h), 'model format version 99 is not supported')
  h = clone()
  h.__metadata__.input_width = 'wide'
  await refused(t, file('nan-width.safetensors', h), 'metadata "input_width" is not a number: "wide"')
  h = clone()
  h.__metadata__.input_width = '12'
  await refused(t, file('small-width.safetensors', h), 'metadata "input_width" is out of range: 12')
  h = clone()
  h.__metadata__.loss = 'hinge'
  await refused(t, file('loss.safetensors', h), 'metadata "loss" is not a known loss')
  h = clone()
  h.__metadata__.norm_std = 7
  await refused(t, file('not-string.safetensors', h), 'metadata "norm_std" is not a string')
})

t.test('not a model at all', async (t) => {
  const pickle = join(scratch, 'model.pt')
  writeFileSync(pickle, Buffer.from([0x80, 0x02, 0x63, 0x6f, 0x6c, 0x6c, 0x65, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x73]))
  await refused(t, pickle, 'looks like a PyTorch pickle (.pt/.pth), not safetensors; siamese-torch never unpickles')
  const zip = join(scratch, 'model.pth')
  writeFileSync(zip, Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(40)]))
  await refused(t, zip, 'looks like a PyTorch pickle')
  const empty = join(scratch, 'empty.safetensors')
  writeFileSync(empty, '')
  await refused(t, empty, 'too short to be a safetensors file (0 bytes)')
  const dir = join(scratch, 'a-folder')
  mkdirSync(dir)
  await refused(t, dir, 'is a directory, not a model file')
  await refused(t, join(scratch, 'missing.safetensors'), 'file not found')
  // Files people pass by mistake: said for what they are, not as a header length.
  const mistakes = [
    ['notes.txt', 'a model, honestly\nsecond line\n', 'a text file'],
    ['metrics.json', JSON.stringify({ epoch: 1, accuracy: 0.9 }), 'JSON text'],
    ['curves.png', await sharp({ create: { width: 4, height: 4, channels: 3, background: '#fff' } }).png().toBuffer(), 'a PNG image'],
    ['photo.jpg', await sharp({ create: { width: 4, height: 4, channels: 3, background: '#fff' } }).jpeg().toBuffer(), 'a JPEG image'],
    ['images.gz', gzipSync(Buffer.alloc(100)), 'gzip-compressed data']
  ]
  for (const [name, contents, what] of mistakes) {
    writeFileSync(join(scratch, name), contents)
    await refused(t, join(scratch, name), `not a safetensors model file: it looks like ${what}`)
  }
})

t.test('a header whose length starts with the byte a pickle starts with still loads', async (t) => {
  // Found by CI: a checkpoint whose header was 0x??80 bytes long was refused as a pickle, since
  // its first byte (the low byte of the length) is 0x80, as a pickle's is. 1 file in 256.
  const json = JSON.stringify(header)
  const padded = json + ' '.repeat((0x80 - (json.length % 256) + 256) % 256 + 0x400)
  t.equal(padded.length % 256, 0x80)
  const path = join(scratch, 'length-80.safetensors')
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(padded.length))
  writeFileSync(path, Buffer.concat([length, Buffer.from(padded), data]))
  t.equal(readFileSync(path)[0], 0x80, 'the file starts with 0x80')
  const loaded = await loadModel(path)
  t.equal(loaded.config.embeddingSize, 512, 'and loads')
  loaded.dispose()
})

t.test('NaN weights are refused', async (t) => {
  const poisoned = Buffer.from(data)
  poisoned.writeFloatLE(NaN, 0)
  await refused(t, file('nan.safetensors', header, poisoned), /holds NaN or infinite values/)
})

t.test('random bytes flipped never crash the process', async (t) => {
  let refusedCount = 0
  for (let i = 0; i < 60; i++) {
    const copy = Buffer.from(bytes)
    for (let k = 0; k < 4; k++) {
      const at = 8 + ((i * 7919 + k * 104729) % (headerLength + 16))
      copy[at] ^= 1 << ((i + k) % 8)
    }
    const path = join(scratch, `flip-${i}.safetensors`)
    writeFileSync(path, copy)
    const result = await loadModel(path).then((m) => { m.dispose(); return 'loaded' }, (e) => e.code)
    if (result === 'ERR_BAD_FILE') refusedCount++
    else t.equal(result, 'loaded', `flip ${i}: either loads or is refused with ERR_BAD_FILE`)
  }
  t.ok(refusedCount > 30, `${refusedCount} of 60 corrupted headers refused, the rest still valid`)
})

t.test('saving is atomic and reports unwritable places', async (t) => {
  await t.rejects(model.save(join(scratch, 'no-such-dir', 'm.safetensors')), { code: 'ERR_BAD_FILE', message: /cannot create a file next to it/ })
  await model.save(good)
  t.same(readFileSync(good).subarray(8 + headerLength), data, 'saving again writes the same weights')
})
