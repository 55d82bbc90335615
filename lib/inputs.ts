// Image inputs as users give them, turned into the uint8 pixels the addon takes.
import { decodeImage } from './images.js'
import { invalidArg } from './validate.js'

/**
 * One image: raw grayscale pixels of the model's size (`Uint8Array` 0..255 or `Float32Array`
 * 0..1, `width * height` values, row by row), or an encoded PNG/JPEG as a file path or a
 * `Buffer` (decoded, turned to gray and resized to the model's size).
 */
export type ImageInput = string | Buffer | Uint8Array | Float32Array

/** `inputs` as one Uint8Array of `inputs.length * width * height` pixels. */
export async function toPixels (inputs: readonly unknown[], width: number, height: number, name: string): Promise<Uint8Array> {
  const size = width * height
  const out = new Uint8Array(inputs.length * size)
  // Array.from: a hole in the list is an undefined image (refused), not one silently skipped.
  await Promise.all(Array.from(inputs, async (input, i) => {
    const label = inputs.length === 1 && !name.endsWith(']') ? name : `${name}[${i}]`
    if (typeof input === 'string') {
      if (input.length === 0) throw invalidArg(label, 'a file path, Buffer, Uint8Array or Float32Array', input)
      out.set(await decodeImage(input, width, height), i * size)
    } else if (Buffer.isBuffer(input)) {
      out.set(await decodeImage(input, width, height), i * size)
    } else if (input instanceof Uint8Array || input instanceof Uint8ClampedArray) {
      if (input.length !== size) throw invalidArg(label, `${size} pixels (${width}x${height})`, input)
      out.set(input, i * size)
    } else if (input instanceof Float32Array || input instanceof Float64Array) {
      if (input.length !== size) throw invalidArg(label, `${size} pixels (${width}x${height})`, input)
      for (let p = 0; p < size; p++) {
        const v = input[p]
        if (!(v >= 0 && v <= 1)) throw invalidArg(`${label}[${p}]`, 'a finite pixel value from 0 to 1', v)
        out[i * size + p] = Math.round(v * 255)
      }
    } else {
      throw invalidArg(label, 'a file path, Buffer (PNG/JPEG), Uint8Array or Float32Array', input)
    }
  }))
  return out
}
