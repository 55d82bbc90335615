// Type-level assertions for the declaration tests: they fail to compile when they do not hold.
export type IsAny<T> = 0 extends 1 & T ? true : false
export type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
export function expectTrue<T extends true> (): T | undefined {
  return undefined
}
