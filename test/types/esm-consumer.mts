// How an ES module user sees the published types (resolved through package.json "exports").
import { version, SiameseTorchError, type VersionInfo, type ErrorCode, type LibtorchSource } from 'siamese-torch'
import { expectTrue, type Equal, type IsAny } from './assert.js'

const v: VersionInfo = version()
expectTrue<Equal<typeof v.siameseTorch, string>>()
expectTrue<Equal<typeof v.cuda, boolean>>()
expectTrue<Equal<typeof v.cudaDevices, number>>()
expectTrue<Equal<typeof v.libtorchSource, LibtorchSource>>()
expectTrue<Equal<IsAny<VersionInfo[keyof VersionInfo]>, false>>()
expectTrue<Equal<IsAny<ReturnType<typeof version>>, false>>()

// @ts-expect-error cudaDevices is a count, not a list
v.cudaDevices.map((d: unknown) => d)

try {
  version()
} catch (err) {
  if (err instanceof SiameseTorchError) {
    const code: ErrorCode = err.code
    const path: string | undefined = err.path
    console.log(code, path)
    // @ts-expect-error code is one of the documented codes
    const bogus: typeof err.code = 'ERR_NOT_A_CODE'
    console.log(bogus)
  }
}

// @ts-expect-error a code must be one of ErrorCode
new SiameseTorchError('x', 'ERR_WHATEVER')
