/**
 * ESLint: typescript-eslint's recommended rules, promises that are never dropped or misused
 * (with type information), and two rules of this codebase: object keys are built only in
 * src/store/keys.ts, and the orchestrator's object graph only in src/orchestrator/assemble.ts.
 * Formatting is Prettier's (`npm run lint` checks both). Import circles are checked by
 * test/unit/imports.test.ts, type-only imports included (import-x's no-cycle skips those).
 */
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

/** A template or concatenation that starts `runs/...`: an object key built by hand. */
const KEY_BUILT_ELSEWHERE = [
  {
    selector: 'TemplateLiteral[quasis.0.value.raw=/^runs\\//]',
    message:
      'Build object keys with src/store/keys.ts (keys.*), the one place that knows their format.',
  },
  {
    selector: "BinaryExpression[operator='+'][left.value=/^runs\\//]",
    message:
      'Build object keys with src/store/keys.ts (keys.*), the one place that knows their format.',
  },
];

/** The orchestrator's parts are put together by assemble.ts only. */
const WIRED_ELSEWHERE = [
  {
    selector: 'NewExpression[callee.name=/^(Coordinator|MergeCoordinator|ValidationCoordinator)$/]',
    message:
      'Build the orchestrator with src/orchestrator/assemble.ts, the one place that wires it.',
  },
];

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'dist/',
      '.bench-build/',
      'coverage/',
      'build/',
      'src/kernels/native/build/',
      'test/fixtures/',
      'data/',
      'runs/',
      'checkpoints/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      'no-restricted-syntax': ['error', ...KEY_BUILT_ELSEWHERE, ...WIRED_ELSEWHERE],
    },
  },
  {
    files: ['src/store/keys.ts'],
    rules: { 'no-restricted-syntax': ['error', ...WIRED_ELSEWHERE] },
  },
  {
    files: ['src/orchestrator/assemble.ts'],
    rules: { 'no-restricted-syntax': ['error', ...KEY_BUILT_ELSEWHERE] },
  },
  {
    // Tests of the key syntax write keys out, bad ones included, to check how they parse.
    files: ['test/unit/store/**/*.ts'],
    rules: { 'no-restricted-syntax': ['error', ...WIRED_ELSEWHERE] },
  },
  {
    // CommonJS files for tools that require them (pm2's process file).
    files: ['**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: {
        require: 'readonly',
        module: 'writable',
        __dirname: 'readonly',
        process: 'readonly',
      },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The dashboard's page script runs in the browser, with uPlot loaded before it.
    files: ['dashboard/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: Object.fromEntries(
        [
          'window',
          'document',
          'location',
          'fetch',
          'getComputedStyle',
          'Node',
          'uPlot',
          'setTimeout',
          'console',
        ].map((g) => [g, 'readonly']),
      ),
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly' },
    },
  },
  prettier,
);
