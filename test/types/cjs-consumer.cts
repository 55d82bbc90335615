// How a CommonJS user sees the published types.
import siamese = require('siamese-torch')
import { expectTrue, type Equal } from './assert.js'

const v = siamese.version()
expectTrue<Equal<typeof v, siamese.VersionInfo>>()
const err = new siamese.SiameseTorchError('bad', 'ERR_BAD_FILE', { path: '/x' })
expectTrue<Equal<typeof err.code, siamese.ErrorCode>>()
