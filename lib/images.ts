// Decoding images (JPEG, PNG, WebP, GIF, TIFF, AVIF) into uint8 pixels of one size and channel
// count, with sharp (libvips): fast, well kept, and prebuilt for every platform that Node and
// Electron run on. Pixels everywhere are row by row, channels interleaved (HWC), as sharp's raw
// output.
import type SharpType from 'sharp'

import type { Fit } from './contract.js'
import { SiameseTorchError } from './errors.js'
import { decodeExactPng } from './png.js'

let sharpModule: typeof SharpType | undefined

// Loaded on first use: importing siamese-torch should not pay for libvips.
function sharp (): typeof SharpType {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  sharpModule ??= require('sharp') as typeof SharpType
  return sharpModule
}

export type { Fit }

/** The size, channel count (1: grey, 3: RGB) and fit images are decoded to. */
export interface ImageTarget {
  readonly width: number
  readonly height: number
  readonly channels: 1 | 3
  readonly fit: Fit
}

/** Raw pixels as sharp reads them: 1 grey, 2 grey and alpha, 3 RGB, 4 RGBA; uint8, HWC. */
export interface RawPixels {
  readonly data: Uint8Array
  readonly width: number
  readonly height: number
  readonly channels: 1 | 2 | 3 | 4
}

const BLACK = { r: 0, g: 0, b: 0, alpha: 1 }

/** The steps after reading: alpha on black, resized with the fit, to grey or sRGB, raw bytes. */
async function convert (image: SharpType.Sharp, target: ImageTarget): Promise<Uint8Array> {
  const { width, height, channels, fit } = target
  let pipeline = image
    .flatten({ background: '#000000' })
    .resize(width, height, fit === 'fill' ? { fit } : { fit, background: BLACK, position: 'centre' })
  pipeline = channels === 1 ? pipeline.grayscale() : pipeline.toColourspace('srgb').removeAlpha()
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true })
  return exactly(data, info.channels, target)
}

/**
 * `data` (sharp's output, `have` channels a pixel) as exactly `width * height * channels` bytes,
 * whatever sharp chose to give (an alpha it kept, a grey image it did not widen).
 */
function exactly (data: Buffer, have: number, target: ImageTarget): Uint8Array {
  const { width, height, channels } = target
  const pixels = width * height
  if (data.length !== pixels * have) {
    throw new Error(`sharp gave ${data.length} bytes for ${width}x${height}x${have}`)
  }
  if (have === channels) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  const out = new Uint8Array(pixels * channels)
  // Gray (with or without alpha) to RGB: the grey repeated. Otherwise the first channels: an
  // alpha sharp kept is dropped (the pipeline already converted the colours themselves).
  const widen = have <= 2 && channels === 3
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < channels; c++) out[p * channels + c] = data[p * have + (widen ? 0 : c)]
  }
  return out
}

/**
 * A file (path) or encoded buffer (JPEG, PNG, WebP, GIF, TIFF, AVIF) as exactly
 * `width * height * channels` bytes, row by row, channels interleaved: turned upright by its EXIF
 * orientation, transparent parts laid on black, resized with `fit` (`'contain'` letterboxes on
 * black), then grey (libvips' lightness: pure red becomes mid grey) or sRGB.
 *
 * @example
 * ```ts
 * const rgb = await decodeImage('cat.jpg', { width: 64, height: 64, channels: 3, fit: 'cover' })
 * ```
 */
export async function decodeImage (source: string | Uint8Array, target: ImageTarget): Promise<Uint8Array> {
  if (typeof source !== 'string') {
    // A PNG already of the target's size and channels: its pixels are the answer (lib/png.ts).
    const exact = decodeExactPng(source, target.width, target.height, target.channels)
    if (exact !== undefined) return exact
  }
  try {
    return await convert(sharp()(source, { failOn: 'error' }).rotate(), target)
  } catch (err) {
    const what = typeof source === 'string' ? source : 'image buffer'
    const reason = err instanceof Error ? err.message : String(err)
    throw new SiameseTorchError(`${what}: not a readable image (JPEG, PNG, WebP, GIF, TIFF, AVIF) (${reason})`,
      typeof source === 'string' ? 'ERR_BAD_FILE' : 'ERR_INVALID_ARG',
      typeof source === 'string' ? { path: source, cause: err } : { cause: err })
  }
}

/**
 * Raw pixels of another size or channel count as `target`'s: alpha laid on black, resized with
 * the fit, channels converted (grey widened to RGB, RGB to grey by lightness). The caller checks
 * `raw` first (`data.length === width * height * channels`).
 */
export async function resizeRaw (raw: RawPixels, target: ImageTarget): Promise<Uint8Array> {
  const { data, width, height, channels } = raw
  return convert(sharp()(data, { raw: { width, height, channels } }), target)
}

/**
 * Whether an image file has colour: three or more channels not counting alpha, in a colour space
 * other than black and white, and pixels whose channels differ (a grey picture saved as RGB is
 * grey). A grey file costs a header read; an RGB one a 32x32 thumbnail too.
 */
export async function isColourImage (file: string): Promise<boolean> {
  try {
    const { space, channels, hasAlpha } = await sharp()(file, { failOn: 'error' }).metadata()
    if (space === 'b-w' || (channels ?? 0) - (hasAlpha === true ? 1 : 0) < 3) return false
    // Stored as colour: grey pictures often are (many tools save RGB). Look at the pixels, at a
    // 32x32 thumbnail: colour when some pixel's channels differ by more than JPEG's noise.
    const { data } = await sharp()(file, { failOn: 'error' }).rotate().flatten({ background: '#000000' })
      .resize(32, 32, { fit: 'fill' }).toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true })
    for (let i = 0; i + 2 < data.length; i += 3) {
      const r = data[i]
      const g = data[i + 1]
      const b = data[i + 2]
      if (Math.max(Math.abs(r - g), Math.abs(g - b), Math.abs(r - b)) > 8) return true
    }
    return false
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err)
    throw new SiameseTorchError(`${file}: not a readable image (JPEG, PNG, WebP, GIF, TIFF, AVIF) (${reason})`,
      'ERR_BAD_FILE', { path: file, cause: err })
  }
}
