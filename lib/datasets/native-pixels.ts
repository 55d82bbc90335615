// Pixels held natively: datasets.imageFolder decodes into a NativePixels store (uint8, HWC, owned
// by LibTorch), and IDX files (datasets.idx, embedded, mnist, fashionMnist) are read into one; training,
// evaluation and inference read it where it is: no copy in JavaScript, none when a run starts. The set's `images` is then a getter that copies the pixels into a
// Uint8Array the first time it is read (and keeps that copy), for code that reads bytes.
import { binding, type NativePixels } from '../binding.js'
import type { LabelledImages } from './types.js'

const STORE = Symbol('siamese-torch native pixels')

/** A store for `count` images of `width` x `height` x `channels`, filled with `set`, then frozen. */
export function createStore (count: number, width: number, height: number, channels: 1 | 3): NativePixels {
  return new (binding().NativePixels)(count, height, width, channels)
}

/** A labelled set over a frozen store: `images` copies on first read. */
export function nativeSet (store: NativePixels, fields: Omit<LabelledImages, 'images'>): LabelledImages {
  let copy: Uint8Array | undefined
  const set = { ...fields } as Record<string | symbol, unknown>
  Object.defineProperty(set, 'images', { enumerable: true, get: () => (copy ??= store.read(0, fields.count)) })
  Object.defineProperty(set, STORE, { value: store })
  return set as unknown as LabelledImages
}

/**
 * `set` with some fields replaced (not `images`): over the same store when its pixels are held
 * natively (a spread would read `images`, copying them, and lose the store).
 */
export function withFields (set: LabelledImages, fields: Partial<Omit<LabelledImages, 'images'>>): LabelledImages {
  const store = storeOf(set)
  if (store === undefined) return { ...set, ...fields }
  const own: Record<string, unknown> = {}
  for (const key of Object.keys(set)) if (key !== 'images') own[key] = (set as unknown as Record<string, unknown>)[key]
  return nativeSet(store, { ...own, ...fields } as Omit<LabelledImages, 'images'>)
}

/** The store a set's pixels are held in, when they are held natively. */
export function storeOf (set: object): NativePixels | undefined {
  return (set as Record<symbol, NativePixels | undefined>)[STORE]
}

/** The bytes of images [start, start + count) of a set, without copying the rest. */
export function imageBytes (set: LabelledImages, start: number, count = 1): Uint8Array {
  const store = storeOf(set)
  if (store !== undefined) return store.read(start, count)
  const size = set.width * set.height * (set.channels ?? 1)
  return set.images.slice(start * size, (start + count) * size)
}
