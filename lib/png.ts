// A direct reader for the PNGs a server sees most: an image already of the model's size, 8-bit
// grey or RGB (with an alpha channel only if every pixel is opaque, as a canvas exports), not
// interlaced, with no transparent colour, colour profile, gamma or orientation. Its
// pixels are then exactly what sharp's pipeline gives, with nothing for a resize, flatten or
// colour conversion to do: grey read as is or repeated for a colour model, RGB read as is, or for
// a grey model when every pixel is neutral (r = g = b, which sharp's lightness maps to r itself;
// test/png.test.mjs checks all 256). It saves libvips' per-call cost: at 28x28, about 0.4 ms of
// CPU an image through sharp, against tens of microseconds here. Anything else, and any PNG that
// is not perfectly well formed, is left to sharp (`undefined`), so errors and every other case
// behave exactly as before.
import { crc32, inflateSync } from 'node:zlib'

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/**
 * Ancillary chunks that do not change the pixels sharp gives: text, time, physical size, and the
 * sRGB marker (the space sharp assumes anyway). Any other (tRNS, iCCP, gAMA, cHRM, sBIT, eXIf...)
 * sends the image to sharp.
 */
const HARMLESS = new Set(['tEXt', 'zTXt', 'iTXt', 'tIME', 'pHYs', 'sRGB'])

/**
 * Pixels of a decompressed image larger than this are inflated off the main thread, by sharp.
 * 64x64 RGBA: an inflate of well under a millisecond.
 */
const MAX_INLINE_BYTES = 64 * 64 * 4

/**
 * Width and height from a PNG's header (`IHDR`), when `bytes` are a PNG whose chunks run whole
 * to its end (`IEND`); otherwise undefined (not a PNG, or a truncated one: sharp then says why).
 */
export function pngSize (bytes: Uint8Array): { width: number, height: number } | undefined {
  const size = headerSize(bytes)
  if (size === undefined) return undefined
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let at = 8; at + 12 <= bytes.length; at += 12 + view.getUint32(at)) {
    if (chunkType(bytes, at + 4) === 'IEND') return size
  }
  return undefined
}

/** Width and height from the signature and `IHDR` alone (the chunks after it are not looked at). */
function headerSize (bytes: Uint8Array): { width: number, height: number } | undefined {
  if (bytes.length < 33 || !SIGNATURE.equals(bytes.subarray(0, 8))) return undefined
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (view.getUint32(8) !== 13 || chunkType(bytes, 12) !== 'IHDR') return undefined
  const width = view.getUint32(16)
  const height = view.getUint32(20)
  // Zero or above PNG's 2^31 - 1: not a size to trust (sharp reads such a header, and refuses it).
  if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) return undefined
  return { width, height }
}

function chunkType (bytes: Uint8Array, at: number): string {
  return String.fromCharCode(bytes[at] ?? 0, bytes[at + 1] ?? 0, bytes[at + 2] ?? 0, bytes[at + 3] ?? 0)
}

/**
 * The pixels (HWC, uint8) of `bytes` as `channels` channels (1 grey, 3 RGB) when they are a
 * well-formed, non-interlaced 8-bit grey or RGB PNG of exactly `width x height` (with alpha: all
 * opaque), with no chunk that could change what sharp decodes, and (RGB for grey) only neutral
 * pixels; otherwise undefined.
 *
 * @example
 * ```ts
 * const pixels = decodeExactPng(buffer, 28, 28, 1) ?? await decodeImage(buffer, target)
 * ```
 */
export function decodeExactPng (bytes: Uint8Array, width: number, height: number, channels: 1 | 3): Uint8Array | undefined {
  // The chunks are checked whole, CRCs included, by imageData below.
  const size = headerSize(bytes)
  if (size === undefined || size.width !== width || size.height !== height) return undefined
  // IHDR: bit depth 8, colour type 0 (grey), 2 (RGB), 4 (grey, alpha) or 6 (RGBA), compression
  // 0, filter 0, no interlace.
  const stored = COLOUR_TYPE_CHANNELS[bytes[25] ?? 1] ?? 0
  if (stored === 0 || bytes[24] !== 8 || bytes[26] !== 0 || bytes[27] !== 0 || bytes[28] !== 0) return undefined
  const stride = width * stored
  const raw = (stride + 1) * height
  if (raw > MAX_INLINE_BYTES + height) return undefined
  const filtered = imageData(bytes, raw)
  if (filtered === undefined) return undefined
  const decoded = unfilter(filtered, stride, height, stored)
  const pixels = decoded === undefined || stored === 1 || stored === 3 ? decoded : opaque(decoded, stored)
  const has = stored === 1 || stored === 2 ? 1 : 3
  if (pixels === undefined || has === channels) return pixels
  const count = width * height
  const out = new Uint8Array(count * channels)
  if (has === 1) {
    for (let p = 0; p < count; p++) out.fill(pixels[p], p * 3, p * 3 + 3)
    return out
  }
  for (let p = 0; p < count; p++) {
    const r = pixels[p * 3]
    if (pixels[p * 3 + 1] !== r || pixels[p * 3 + 2] !== r) return undefined
    out[p] = r
  }
  return out
}

/**
 * The decompressed image data (`raw` bytes: each row's filter byte and pixels) of a PNG whose
 * chunks all check out (lengths, CRCs, one run of IDAT, IEND last) and are IHDR, IDAT, IEND or
 * harmless; otherwise undefined.
 */
function imageData (bytes: Uint8Array, raw: number): Buffer | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const idat: Uint8Array[] = []
  let at = 8
  let ended = false
  let lastType = ''
  while (at + 12 <= bytes.length) {
    const length = view.getUint32(at)
    const type = chunkType(bytes, at + 4)
    const end = at + 12 + length
    if (length > 0x7fffffff || end > bytes.length) return undefined
    if (crc32(bytes.subarray(at + 4, at + 8 + length)) !== view.getUint32(at + 8 + length)) return undefined
    if (type === 'IDAT') {
      // The image data must be one run of consecutive chunks.
      if (idat.length > 0 && lastType !== 'IDAT') return undefined
      idat.push(bytes.subarray(at + 8, at + 8 + length))
    } else if (type === 'IEND') {
      ended = end === bytes.length
      break
    } else if ((type === 'IHDR') !== (at === 8) || (type !== 'IHDR' && !HARMLESS.has(type))) {
      return undefined
    }
    lastType = type
    at = end
  }
  if (!ended || idat.length === 0) return undefined
  let filtered: Buffer
  try {
    filtered = inflateSync(idat.length === 1 ? idat[0] : Buffer.concat(idat), { maxOutputLength: raw + 1 })
  } catch {
    return undefined
  }
  return filtered.length === raw ? filtered : undefined
}

/** Channels a pixel by PNG colour type (8-bit): grey, RGB, grey and alpha, RGBA; 3 (palette) is not read. */
const COLOUR_TYPE_CHANNELS: Readonly<Record<number, number>> = { 0: 1, 2: 3, 4: 2, 6: 4 }

/**
 * Pixels with an alpha channel (`stored` 2 or 4 a pixel, alpha last) without it, when every pixel
 * is opaque (sharp's flatten onto black then changes nothing); otherwise undefined.
 */
function opaque (pixels: Uint8Array, stored: number): Uint8Array | undefined {
  const count = pixels.length / stored
  const colours = stored - 1
  const out = new Uint8Array(count * colours)
  for (let p = 0; p < count; p++) {
    if (pixels[p * stored + colours] !== 255) return undefined
    for (let c = 0; c < colours; c++) out[p * colours + c] = pixels[p * stored + c]
  }
  return out
}

/** PNG's five row filters undone; each row of `filtered` is its filter byte and `stride` bytes. */
function unfilter (filtered: Uint8Array, stride: number, height: number, bpp: number): Uint8Array | undefined {
  const out = new Uint8Array(stride * height)
  for (let y = 0; y < height; y++) {
    const filter = filtered[y * (stride + 1)]
    const src = y * (stride + 1) + 1
    const row = y * stride
    const up = row - stride // the row above in `out`; absent (zero) on the first row
    for (let x = 0; x < stride; x++) {
      const value = filtered[src + x]
      const left = x >= bpp ? out[row + x - bpp] : 0
      const above = y > 0 ? out[up + x] : 0
      const corner = y > 0 && x >= bpp ? out[up + x - bpp] : 0
      switch (filter) {
        case 0: out[row + x] = value; break
        case 1: out[row + x] = value + left; break
        case 2: out[row + x] = value + above; break
        case 3: out[row + x] = value + ((left + above) >> 1); break
        case 4: out[row + x] = value + paeth(left, above, corner); break
        default: return undefined
      }
    }
  }
  return out
}

function paeth (a: number, b: number, c: number): number {
  const p = a + b - c
  const pa = Math.abs(p - a)
  const pb = Math.abs(p - b)
  const pc = Math.abs(p - c)
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c
}
