// Argument checks, all with one message template (sharp's habit):
//   Expected <what> for <option> but received <value>
import { SiameseTorchError } from './errors.js'

/** A short, readable rendering of any value for an error message. */
function describeValue (value: unknown): string {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (typeof value === 'string') return value.length > 60 ? `string "${value.slice(0, 57)}..."` : `string "${value}"`
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return `${typeof value} ${String(value)}`
  }
  if (typeof value === 'function') return 'a function'
  if (Array.isArray(value)) return `an array of length ${value.length}`
  if (ArrayBuffer.isView(value)) {
    const length = 'length' in value ? (value as unknown as { length: number }).length : value.byteLength
    return `${value.constructor.name} of length ${length}`
  }
  const name = (value).constructor?.name
  return name && name !== 'Object' ? `a ${name}` : 'an object'
}

/** The ERR_INVALID_ARG error for option `name`. */
export function invalidArg (name: string, expected: string, actual: unknown): SiameseTorchError {
  return new SiameseTorchError(`Expected ${expected} for ${name} but received ${describeValue(actual)}`, 'ERR_INVALID_ARG')
}

/**
 * A non-empty array of strings. Holes count as missing values (`.some` and `.every` would skip
 * them, letting `['a', , 'c']` through).
 */
export function isStringArray (value: unknown): value is string[] {
  return Array.isArray(value) && value.length > 0 && Array.from(value as unknown[]).every((s) => typeof s === 'string')
}

export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value)
}

/** An options object (or undefined, meaning {}), with no keys other than `known`. */
export function optionsObject (value: unknown, name: string, known: readonly string[]): Record<string, unknown> {
  if (value === undefined) return {}
  if (!isPlainObject(value)) throw invalidArg(name, 'an object', value)
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      const expected = known.length === 0 ? 'no options' : `only the options ${known.join(', ')}`
      throw new SiameseTorchError(`Expected ${expected} for ${name} but received an unknown option "${key}"`,
        'ERR_INVALID_ARG')
    }
  }
  return value
}

export function integerIn (value: unknown, name: string, min: number, max: number = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`
    throw invalidArg(name, range, value)
  }
  return value
}

export function nonEmptyString (value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0) throw invalidArg(name, 'a non-empty string', value)
  return value
}

export function functionOption<T extends (...args: never[]) => unknown> (value: unknown, name: string): T {
  if (typeof value !== 'function') throw invalidArg(name, 'a function', value)
  return value as T
}
