// Lint: neostandard (the project's style: no semicolons, a space before function parentheses)
// for every JavaScript and TypeScript file, and typescript-eslint's type-checked rules for lib/.
import globals from 'globals'
import neostandard from 'neostandard'
import tseslint from 'typescript-eslint'

const typed = ['lib/**/*.ts', 'lib/**/*.mts']

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'build/**', 'node_modules/**', '.tap/**'] }),
  ...tseslint.configs.recommendedTypeChecked.map((config) => ({ ...config, files: typed })),
  {
    files: typed,
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } }
  },
  // The server's page runs in a browser.
  { files: ['lib/page/**/*.js'], languageOptions: { globals: globals.browser } }
]
