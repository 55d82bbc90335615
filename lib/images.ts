// Decoding PNG and JPEG images into grayscale pixels of one size, with sharp (libvips): fast,
// well kept, and prebuilt for every platform that Node and Electron run on.
import type SharpType from 'sharp'

import { SiameseTorchError } from './errors.js'

let sharpModule: typeof SharpType | undefined

// Loaded on first use: importing siamese-torch should not pay for libvips.
function sharp (): typeof SharpType {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  sharpModule ??= require('sharp') as typeof SharpType
  return sharpModule
}

/**
 * A PNG or JPEG file (path) or buffer as `width * height` grayscale bytes: transparent parts are
 * laid on black, colours turned to gray by libvips (by lightness: pure red becomes mid gray), and
 * the image stretched to the size.
 */
export async function decodeImage (source: string | Uint8Array, width: number, height: number): Promise<Uint8Array> {
  try {
    const { data, info } = await sharp()(source, { failOn: 'error' })
      .flatten({ background: '#000000' })
      .grayscale()
      .resize(width, height, { fit: 'fill' })
      .raw()
      .toBuffer({ resolveWithObject: true })
    if (info.channels === 1) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    const out = new Uint8Array(width * height)
    for (let i = 0; i < out.length; i++) out[i] = data[i * info.channels]
    return out
  } catch (err) {
    const what = typeof source === 'string' ? source : 'image buffer'
    const reason = err instanceof Error ? err.message : String(err)
    throw new SiameseTorchError(`${what}: not a readable PNG or JPEG image (${reason})`,
      typeof source === 'string' ? 'ERR_BAD_FILE' : 'ERR_INVALID_ARG',
      typeof source === 'string' ? { path: source, cause: err } : { cause: err })
  }
}
