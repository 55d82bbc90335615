// What the CPU benchmark (run.mjs) and the GPU one (../gpu/bench.mjs) share.

// Forward FLOPs of one tower pass over one 28x28 image (multiply-adds x 2): conv1, conv2, conv3,
// linear1. A labelled training pair costs the forward of 1.5 images (a triplet is two pairs over
// three images) and a backward of about twice the forward; a predicted pair two forwards.
export const towerFlops = 2 * (22 * 22 * 64 * 49 + 7 * 7 * 128 * 64 * 25 + 3 * 3 * 256 * 128 * 25 + 2304 * 512)
export const trainFlopsPerPair = 3 * 1.5 * towerFlops
export const predictFlopsPerPair = 2 * towerFlops

/** The last line of a tool's output, as JSON (each tool prints its result last). */
export const lastJson = (out) => JSON.parse(out.trim().split('\n').at(-1))

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
