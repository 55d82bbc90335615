// Image inputs as users give them, turned into the uint8 pixels the addon takes (HWC).
import { MAX_SIDE } from './contract.js'
import { decodeImage, resizeRaw, type ImageTarget } from './images.js'
import { integerIn, invalidArg } from './validate.js'

/**
 * Raw pixels of any size: `width * height * channels` values, row by row, channels interleaved
 * (1 gray, 2 gray and alpha, 3 RGB, 4 RGBA), as bytes (0..255) or floats (0..1). Resized to the
 * model's size with its fit, alpha laid on black, and the channels converted to the model's
 * (gray widened to RGB, RGB turned to gray).
 *
 * @example
 * ```ts
 * // A canvas's pixels, as they come:
 * const { data, width, height } = context.getImageData(0, 0, canvas.width, canvas.height)
 * await model.embed({ data, width, height, channels: 4 })
 * ```
 */
export interface RawImage {
  data: Uint8Array | Uint8ClampedArray | Float32Array
  width: number
  height: number
  channels: 1 | 2 | 3 | 4
}

/**
 * One image: raw pixels already of the model's size and channels (`Uint8Array` 0..255 or
 * `Float32Array` 0..1, `width * height * channels` values, row by row, channels interleaved), a
 * `RawImage` of any size, or an encoded image (JPEG, PNG, WebP, GIF, TIFF, AVIF) as a file path
 * or a `Buffer` (decoded, turned upright, converted to the model's channels and resized to its
 * size with its fit).
 */
export type ImageInput = string | Buffer | Uint8Array | Float32Array | RawImage

const EXPECTED = 'a file path, Buffer (encoded image), Uint8Array, Float32Array or { data, width, height, channels }'

/** Floats in 0..1 (or bytes, copied) into `out` from `offset`, each checked; `name` names the array. */
function copyValues (values: ArrayLike<number>, out: Uint8Array, offset: number, name: string): void {
  if (values instanceof Uint8Array || values instanceof Uint8ClampedArray) {
    out.set(values, offset)
    return
  }
  for (let p = 0; p < values.length; p++) {
    const v = values[p]
    if (!(v >= 0 && v <= 1)) throw invalidArg(`${name}[${p}]`, 'a finite pixel value from 0 to 1', v)
    out[offset + p] = Math.round(v * 255)
  }
}

function isRawImage (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !ArrayBuffer.isView(value) && !Array.isArray(value) && 'data' in value
}

/** A `RawImage` checked, its pixels as bytes. */
function rawPixels (raw: Record<string, unknown>, label: string): { data: Uint8Array, width: number, height: number, channels: 1 | 2 | 3 | 4 } {
  const width = integerIn(raw['width'], `${label}.width`, 1, MAX_SIDE)
  const height = integerIn(raw['height'], `${label}.height`, 1, MAX_SIDE)
  const channels = integerIn(raw['channels'], `${label}.channels`, 1, 4) as 1 | 2 | 3 | 4
  const data = raw['data']
  const size = width * height * channels
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray || data instanceof Float32Array) || data.length !== size) {
    throw invalidArg(`${label}.data`, `a Uint8Array or Float32Array of ${size} values (${width}x${height}x${channels})`, data)
  }
  if (data instanceof Uint8Array) return { data, width, height, channels }
  const bytes = new Uint8Array(size)
  copyValues(data, bytes, 0, `${label}.data`)
  return { data: bytes, width, height, channels }
}

/**
 * `inputs` as one Uint8Array of `inputs.length * height * width * channels` bytes (HWC, image
 * after image). `name` names the inputs in errors (`a`, `images`...).
 */
export async function toPixels (inputs: readonly unknown[], target: ImageTarget, name: string): Promise<Uint8Array> {
  const { width, height, channels } = target
  const size = width * height * channels
  const out = new Uint8Array(inputs.length * size)
  // Array.from: a hole in the list is an undefined image (refused), not one silently skipped.
  await Promise.all(Array.from(inputs, async (input, i) => {
    const label = inputs.length === 1 && !name.endsWith(']') ? name : `${name}[${i}]`
    if (typeof input === 'string') {
      if (input.length === 0) throw invalidArg(label, EXPECTED, input)
      out.set(await decodeImage(input, target), i * size)
    } else if (Buffer.isBuffer(input)) {
      out.set(await decodeImage(input, target), i * size)
    } else if (input instanceof Uint8Array || input instanceof Uint8ClampedArray ||
      input instanceof Float32Array || input instanceof Float64Array) {
      if (input.length !== size) throw invalidArg(label, `${size} values (${width}x${height}x${channels})`, input)
      copyValues(input, out, i * size, label)
    } else if (isRawImage(input)) {
      const raw = rawPixels(input, label)
      if (raw.width === width && raw.height === height && raw.channels === channels) {
        out.set(raw.data, i * size)
      } else {
        out.set(await resizeRaw(raw, target), i * size)
      }
    } else {
      throw invalidArg(label, EXPECTED, input)
    }
  }))
  return out
}
