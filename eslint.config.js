// Lint rules: typescript-eslint's recommended type-aware set over src/ and test/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'bench/node_modules/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] }],
      }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-syntax': ['error', {
        selector: "CallExpression[callee.object.name='process'][callee.property.name='exit']",
        message: 'library code never calls process.exit(); return an exit code to the entry point',
      }],
    },
  },
  {
    files: ['src/workers/**', 'src/ipc/**', 'src/proxy/**', 'src/dns/**', 'src/core/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['**/state/**', '**/children/**', '**/node/**', '**/icecast/**', '**/metrics/**', 'etcd3'], message: 'workers and the thread contract never import etcd, the control plane or child processes' },
      ] }],
    },
  },
  {
    // Entry points own the process: they alone may set its end.
    files: ['src/main.ts', 'src/cli/main.ts', 'bench/run.ts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
);
