// Builds native/core on its own (no Node-API) with its C++ tests, and runs them.
import t from 'tap'
import { join } from 'node:path'
import { run, root } from './helpers/run.mjs'

const build = join(root, 'build', 'core-tests')

t.test('native/core C++ tests', async (t) => {
  const configure = run('cmake', ['-S', root, '-B', build, '-DSIAMESE_TORCH_CORE_TESTS=ON', '-DCMAKE_BUILD_TYPE=Release'])
  t.equal(configure.status, 0, configure.stdout + configure.stderr)
  const compile = run('cmake', ['--build', build, '--parallel', '2'])
  t.equal(compile.status, 0, compile.stdout.slice(-4000) + compile.stderr)
  if (compile.status !== 0) return // an old binary proves nothing
  t.notMatch(compile.stdout + compile.stderr, /warning:/, 'no compiler warnings')
  const tests = run(join(build, 'core_tests'), [])
  t.equal(tests.status, 0, tests.stderr)
  t.match(tests.stdout, /^\d+ passed, 0 failed$/m)
  t.comment(tests.stdout.trim())
  const augment = run(join(build, 'augment_tests'), [])
  t.equal(augment.status, 0, augment.stderr)
  t.match(augment.stdout, /^\d+ passed, 0 failed$/m)
  t.comment(`augmentation: ${augment.stdout.trim()}`)
})
