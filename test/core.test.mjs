// Builds native/core's C++ tests (no Node-API) and runs them. In a checkout whose addon was built
// by cmake-js (npm ci, scripts/setup.sh), they are built in that same build folder, from the
// native/core objects the addon was linked from; otherwise native/core is built on its own.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { run, root } from './helpers/run.mjs'

const addonBuild = join(root, 'build')
const addonCache = join(addonBuild, 'CMakeCache.txt')
const reuse = existsSync(addonCache) && /^CMAKE_JS_VERSION\b/m.test(readFileSync(addonCache, 'utf8'))
const build = reuse ? addonBuild : join(root, 'build', 'core-tests')

t.test('native/core C++ tests', async (t) => {
  if (!reuse) {
    const configure = run('cmake', ['-S', root, '-B', build, '-DSIAMESE_TORCH_CORE_TESTS=ON', '-DCMAKE_BUILD_TYPE=Release'])
    t.equal(configure.status, 0, configure.stdout + configure.stderr)
  }
  const compile = run('cmake', ['--build', build, '--parallel', '2', '--target', 'core_tests', 'augment_tests'])
  t.equal(compile.status, 0, compile.stdout.slice(-4000) + compile.stderr)
  if (compile.status !== 0) return // an old binary proves nothing
  t.notMatch(compile.stdout + compile.stderr, /warning:/, 'no compiler warnings')
  t.comment(`built in ${reuse ? "the addon's build folder" : 'a build of its own'}`)
  const tests = run(join(build, 'core_tests'), [])
  t.equal(tests.status, 0, tests.stderr)
  t.match(tests.stdout, /^\d+ passed, 0 failed$/m)
  t.comment(tests.stdout.trim())
  const augment = run(join(build, 'augment_tests'), [])
  t.equal(augment.status, 0, augment.stderr)
  t.match(augment.stdout, /^\d+ passed, 0 failed$/m)
  t.comment(`augmentation: ${augment.stdout.trim()}`)
})
