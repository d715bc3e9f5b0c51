// eslint (flat config) with typescript-eslint's type-aware rules, for the
// house style in /work/shared/STYLE.md: no `any` at a module boundary, no
// promise left floating, `import type` for types, `??` for defaults, `===`.
// `npm run lint`; tsc (`npm run typecheck`) checks the types themselves.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/** Node's globals the plain-JavaScript files use (TypeScript files get theirs from @types/node). */
const nodeGlobals = Object.fromEntries(
  ['process', 'console', 'URL', 'Buffer', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'].map((name) => [name, 'readonly']),
);

export default defineConfig(
  { ignores: ['dist/', 'dist-sea/', 'tools/sea/', 'src/gen/', '.bench/', 'bench/lab/results/', 'node_modules/'] },

  {
    files: ['**/*.ts', '**/*.tsx'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      eqeqeq: ['error', 'always'],
      '@typescript-eslint/no-explicit-any': 'error',
      // node:test's describe/it/test return promises the runner awaits itself.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] }] },
      ],
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'separate-type-imports' }],
      '@typescript-eslint/prefer-nullish-coalescing': ['error', { ignoreConditionalTests: true, ignoreBooleanCoercion: true }],
      // `{ secret: _secret, ...rest }` is how a key is left out of a copy.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
      // Rejecting with `signal.reason` (typed any) or a stored `unknown` error is how an abort is passed on.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true, allowThrowingUnknown: true }],
      // Off: an `async` method without `await` is how a synchronous implementation meets a Promise-returning
      // interface; promises misused or left floating are caught by the two rules above and no-misused-promises.
      '@typescript-eslint/require-await': 'off',
    },
  },

  {
    files: ['**/*.mjs', '**/*.js'],
    extends: [js.configs.recommended],
    languageOptions: { globals: nodeGlobals },
    rules: { eqeqeq: ['error', 'always'] },
  },
);
