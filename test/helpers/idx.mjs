// Builders of IDX files, well formed or broken on purpose.
import { gzipSync } from 'node:zlib'

export function idxImages ({ magic = 2051, count, rows = 28, cols = 28, pixels, extraHeader } = {}) {
  const header = Buffer.alloc(16)
  header.writeUInt32BE(magic, 0)
  header.writeUInt32BE(count, 4)
  header.writeUInt32BE(rows, 8)
  header.writeUInt32BE(cols, 12)
  const body = pixels ?? Buffer.alloc(count * rows * cols, 7)
  return Buffer.concat([header, ...(extraHeader ? [extraHeader] : []), body])
}

export function idxLabels ({ magic = 2049, count, labels } = {}) {
  const header = Buffer.alloc(8)
  header.writeUInt32BE(magic, 0)
  header.writeUInt32BE(count, 4)
  return Buffer.concat([header, labels ?? Buffer.from(Array.from({ length: count }, (_, i) => i % 10))])
}

export const gz = (buffer) => gzipSync(buffer)
