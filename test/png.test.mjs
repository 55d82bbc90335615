// lib/png.ts, the direct reader of PNGs already of the model's size: it must give exactly what
// sharp gives (every row filter, grey and RGB, each way round), and hand every other PNG to sharp.
// sharp's answer is taken by decoding the same bytes from a file: files always go through sharp.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { crc32, deflateSync } from 'node:zlib'
import sharp from 'sharp'
import { decodeExactPng, pngSize } from '../dist/png.js'
import { decodeImage } from '../dist/images.js'
import { toPixels } from '../dist/inputs.js'

const scratch = mkdtempSync(join(tmpdir(), 'siamese-png-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

let files = 0
/** sharp's decoding of `bytes` to `target` (through a file, which the direct reader never sees). */
async function viaSharp (bytes, target) {
  const path = join(scratch, `${files++}.png`)
  writeFileSync(path, bytes)
  return decodeImage(path, target)
}

function chunk (type, data) {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data])
  const out = Buffer.alloc(12 + data.length)
  out.writeUInt32BE(data.length, 0)
  body.copy(out, 4)
  out.writeUInt32BE(crc32(body), 8 + data.length)
  return out
}

function paeth (a, b, c) {
  const p = a + b - c
  const pa = Math.abs(p - a)
  const pb = Math.abs(p - b)
  const pc = Math.abs(p - c)
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c
}

/**
 * A PNG of 8-bit `pixels` (colour type 0 grey, 2 RGB, 4 grey and alpha, 6 RGBA), row y filtered with filters[y % n];
 * `before`/`after` chunks around the image data, which `split` cuts into two IDAT chunks.
 */
function encode (pixels, width, height, colourType, { filters = [0], before = [], between = [], after = [], split = false, depth = 8, interlace = 0 } = {}) {
  const bpp = { 0: 1, 2: 3, 4: 2, 6: 4 }[colourType]
  const stride = width * bpp
  const filtered = Buffer.alloc((stride + 1) * height)
  for (let y = 0; y < height; y++) {
    const f = filters[y % filters.length]
    filtered[y * (stride + 1)] = f
    for (let x = 0; x < stride; x++) {
      const v = pixels[y * stride + x]
      const left = x >= bpp ? pixels[y * stride + x - bpp] : 0
      const up = y > 0 ? pixels[(y - 1) * stride + x] : 0
      const corner = y > 0 && x >= bpp ? pixels[(y - 1) * stride + x - bpp] : 0
      const predicted = [0, left, up, (left + up) >> 1, paeth(left, up, corner)][f] ?? 0
      filtered[y * (stride + 1) + 1 + x] = (v - predicted) & 255
    }
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr.set([depth, colourType, 0, 0, interlace], 8)
  const data = deflateSync(filtered)
  const idat = split
    ? [chunk('IDAT', data.subarray(0, data.length >> 1)), ...between, chunk('IDAT', data.subarray(data.length >> 1))]
    : [chunk('IDAT', data)]
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), ...before, ...idat, ...after, chunk('IEND', Buffer.alloc(0))])
}

let seed = 7
const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) & 255
const noise = (n) => Uint8Array.from({ length: n }, random)
/** RGB pixels with r = g = b. */
const neutral = (n) => Uint8Array.from({ length: n * 3 }, (_, i) => i % 3 === 0 ? random() : 0).map((v, i, a) => a[i - (i % 3)])
const target = (width, height, channels, fit = 'fill') => ({ width, height, channels, fit })
/** `pixels` of `colours` channels with an opaque alpha channel added. */
const opaque = (pixels, colours) => Uint8Array.from({ length: pixels.length / colours * (colours + 1) },
  (_, i) => i % (colours + 1) === colours ? 255 : pixels[Math.floor(i / (colours + 1)) * colours + (i % (colours + 1))])

t.test('every row filter, grey and RGB, gives the pixels sharp gives', async (t) => {
  for (const [width, height] of [[28, 28], [5, 3], [1, 1], [33, 7]]) {
    for (const filters of [[0], [1], [2], [3], [4], [4, 3, 2, 1, 0]]) {
      for (const colourType of [0, 2]) {
        const channels = colourType === 0 ? 1 : 3
        const pixels = noise(width * height * channels)
        const png = encode(pixels, width, height, colourType, { filters })
        const direct = decodeExactPng(png, width, height, channels)
        t.same(direct, pixels, `${width}x${height} ${channels === 1 ? 'grey' : 'RGB'}, filters ${filters}: the pixels`)
        t.same(direct, await viaSharp(png, target(width, height, channels)), '... as sharp decodes them')
      }
    }
  }
})

t.test('grey for a colour model, and neutral RGB for a grey model, as sharp converts them', async (t) => {
  const grey = noise(28 * 28)
  const png = encode(grey, 28, 28, 0, { filters: [4, 1] })
  t.same(decodeExactPng(png, 28, 28, 3), await viaSharp(png, target(28, 28, 3)), 'grey repeated in R, G and B')
  // The rule the reader relies on: sharp's lightness of r = g = b is r, for all 256 values, whatever the fit.
  const all = Uint8Array.from({ length: 256 * 3 }, (_, i) => Math.floor(i / 3))
  const every = encode(all, 16, 16, 2, { filters: [2] })
  for (const fit of ['fill', 'contain', 'cover']) {
    t.same(await viaSharp(every, target(16, 16, 1, fit)), Uint8Array.from({ length: 256 }, (_, v) => v), `sharp: lightness of (v, v, v) is v, fit ${fit}`)
  }
  t.same(decodeExactPng(every, 16, 16, 1), Uint8Array.from({ length: 256 }, (_, v) => v), 'the reader gives the same')
  const rgb = neutral(28 * 28)
  const neutralPng = encode(rgb, 28, 28, 2, { filters: [3, 4] })
  t.same(decodeExactPng(neutralPng, 28, 28, 1), await viaSharp(neutralPng, target(28, 28, 1)), 'a neutral RGB picture for a grey model')
  // sharp's own encoding of a grey picture is RGB (the shape most clients send).
  const bySharp = await sharp(Buffer.from(grey), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer()
  t.equal(bySharp[25], 2, 'sharp writes grey pixels as an RGB PNG')
  t.same(decodeExactPng(bySharp, 28, 28, 1), grey, '... which the reader takes')
  const coloured = rgb.slice()
  coloured[3 * 100 + 1] ^= 1 // one pixel off neutral
  t.equal(decodeExactPng(encode(coloured, 28, 28, 2), 28, 28, 1), undefined, 'one coloured pixel: left to sharp')
})

t.test('every other PNG is left to sharp, and decodes as before', async (t) => {
  const pixels = noise(28 * 28)
  const gAMA = chunk('gAMA', Buffer.from([0, 0, 0xb1, 0x8f]))
  const tRNS = chunk('tRNS', Buffer.from([0, 17]))
  const text = chunk('tEXt', Buffer.from('Comment\0drawn by a test', 'latin1'))
  const base = encode(pixels, 28, 28, 0)
  const cases = {
    'a transparent colour (tRNS)': encode(pixels, 28, 28, 0, { before: [tRNS] }),
    'a gamma (gAMA)': encode(pixels, 28, 28, 0, { before: [gAMA] }),
    'another size': encode(noise(27 * 28), 27, 28, 0),
    'interlaced (Adam7)': await sharp(Buffer.from(pixels), { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('b-w').png({ progressive: true }).toBuffer(),
    'a palette': await sharp(Buffer.from(pixels), { raw: { width: 28, height: 28, channels: 1 } }).png({ palette: true, colours: 16 }).toBuffer(),
    '16 bits': await sharp(Buffer.from(pixels), { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('grey16').png().toBuffer(),
    'grey and alpha': await sharp(Buffer.from(pixels), { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('b-w').joinChannel(Buffer.alloc(784, 200), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer(),
    'IDAT chunks with another chunk between': encode(pixels, 28, 28, 0, { split: true, between: [text] }),
    'bytes after IEND': Buffer.concat([base, Buffer.from('trailing')]),
    'a bad CRC': Buffer.from(base).fill(0, base.length - 16, base.length - 15),
    'truncated image data': Buffer.concat([base.subarray(0, 60), base.subarray(base.length - 12)]),
    'an unknown row filter': encode(pixels, 28, 28, 0, { filters: [0, 0, 5] })
  }
  for (const [what, png] of Object.entries(cases)) {
    t.equal(decodeExactPng(png, 28, 28, 1), undefined, `${what}: not read directly`)
  }
  // Those sharp reads decode through sharp exactly as from a file.
  for (const what of ['a transparent colour (tRNS)', 'a gamma (gAMA)', 'another size', 'interlaced (Adam7)', 'a palette', '16 bits', 'grey and alpha']) {
    t.same(await decodeImage(cases[what], target(28, 28, 1)), await viaSharp(cases[what], target(28, 28, 1)), `${what}: sharp's pixels`)
  }
  await t.rejects(decodeImage(cases['truncated image data'], target(28, 28, 1)), { code: 'ERR_INVALID_ARG' }, 'truncated: refused by sharp, as before')
  // Harmless chunks, and image data in two chunks, are read directly.
  t.same(decodeExactPng(encode(pixels, 28, 28, 0, { before: [text, chunk('pHYs', Buffer.alloc(9))], after: [text] }), 28, 28, 1), pixels, 'text and pHYs chunks: read')
  const rgb = noise(28 * 28 * 3)
  const marked = encode(rgb, 28, 28, 2, { before: [chunk('sRGB', Buffer.from([0])), text] })
  t.same(decodeExactPng(marked, 28, 28, 3), rgb, 'an sRGB chunk: read')
  t.same(decodeExactPng(marked, 28, 28, 3), await viaSharp(marked, target(28, 28, 3)), '... as sharp reads it')
  t.same(decodeExactPng(encode(pixels, 28, 28, 0, { split: true }), 28, 28, 1), pixels, 'two IDAT chunks: read')
  // Bigger than 64x64 RGB is inflated off the main thread, by sharp.
  t.equal(decodeExactPng(encode(opaque(noise(64 * 65 * 3), 3), 64, 65, 6), 64, 65, 3), undefined, 'over 64x64 RGBA: left to sharp')
  t.same(decodeExactPng(encode(opaque(noise(64 * 64 * 3), 3), 64, 64, 6), 64, 64, 3)?.length, 64 * 64 * 3, '64x64 RGBA: read')
})

t.test('an alpha channel, when every pixel is opaque, as sharp flattens it', async (t) => {
  for (const filters of [[0], [1], [2], [3], [4], [1, 4, 2]]) {
    const rgb = noise(28 * 28 * 3)
    const rgba = encode(opaque(rgb, 3), 28, 28, 6, { filters })
    t.same(decodeExactPng(rgba, 28, 28, 3), rgb, `RGBA, filters ${filters}: the colours`)
    t.same(decodeExactPng(rgba, 28, 28, 3), await viaSharp(rgba, target(28, 28, 3)), '... as sharp decodes them')
    const grey = noise(28 * 28)
    const greyAlpha = encode(opaque(grey, 1), 28, 28, 4, { filters })
    t.same(decodeExactPng(greyAlpha, 28, 28, 1), await viaSharp(greyAlpha, target(28, 28, 1)), `grey and alpha, filters ${filters}, for a grey model`)
    t.same(decodeExactPng(greyAlpha, 28, 28, 3), await viaSharp(greyAlpha, target(28, 28, 3)), '... and for a colour model')
  }
  const all = opaque(Uint8Array.from({ length: 256 * 3 }, (_, i) => Math.floor(i / 3)), 3)
  const every = encode(all, 16, 16, 6, { filters: [4] })
  t.same(await viaSharp(every, target(16, 16, 1)), Uint8Array.from({ length: 256 }, (_, v) => v), 'sharp: opaque (v, v, v) is v')
  t.same(decodeExactPng(every, 16, 16, 1), Uint8Array.from({ length: 256 }, (_, v) => v), 'the reader gives the same')
  const seeThrough = opaque(noise(28 * 28 * 3), 3)
  seeThrough[4 * 50 + 3] = 254
  const png = encode(seeThrough, 28, 28, 6)
  t.equal(decodeExactPng(png, 28, 28, 3), undefined, 'one pixel not quite opaque: left to sharp')
  t.same(await decodeImage(png, target(28, 28, 3)), await viaSharp(png, target(28, 28, 3)), '... which lays it on black, as before')
})

t.test("pngSize reads a header's size, and only a PNG's", async (t) => {
  const bomb = encode(new Uint8Array(1), 1, 1, 0)
  bomb.writeUInt32BE(20000, 16)
  bomb.writeUInt32BE(20000, 20)
  t.same(pngSize(bomb), { width: 20000, height: 20000 }, 'a 20000x20000 header')
  t.equal(pngSize(Buffer.from('GIF89a and more bytes than thirty-three')), undefined, 'not a PNG')
  const zero = Buffer.from(bomb)
  zero.writeUInt32BE(0, 16)
  t.equal(pngSize(zero), undefined, 'a zero width is not a size')
  t.equal(pngSize(bomb.subarray(0, 20)), undefined, 'too short')
  t.equal(pngSize(bomb.subarray(0, 40)), undefined, 'a header, but cut before the end')
})

t.test("a model's inputs: PNG buffers give the pixels they hold", async (t) => {
  const a = noise(28 * 28)
  const b = neutral(28 * 28)
  const pixels = await toPixels([encode(a, 28, 28, 0, { filters: [1, 2] }), encode(b, 28, 28, 2, { filters: [4] })], target(28, 28, 1), 'images')
  t.same(pixels.subarray(0, 784), a)
  t.same(pixels.subarray(784), b.filter((_, i) => i % 3 === 0))
})
