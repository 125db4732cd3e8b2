// @ts-check
import eslint from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

const crossModule = (name) => ({
  group: [`**/modules/${name}/**`, `../${name}/**`],
  message: `The ${name} module is not reachable from here (DESIGN.md boundaries).`,
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**', '.tmp/**', 'eslint.config.mjs', 'jest.config.js'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  prettier,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/require-await': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
      curly: ['error', 'all'],
      'no-restricted-syntax': [
        'error',
        { selector: "MemberExpression[object.name='process'][property.name='env']", message: 'Read settings through AppConfig (src/config).' },
      ],
    },
  },
  {
    // Nest resolves constructor parameters by their runtime class: those imports must stay value imports.
    files: ['src/**/*.ts'],
    rules: { '@typescript-eslint/consistent-type-imports': 'off' },
  },
  { files: ['src/config/**', 'test/**', 'bench/**', 'scripts/**'], rules: { 'no-restricted-syntax': 'off' } },
  {
    files: ['test/**', 'bench/**', 'scripts/**', 'src/**/*.spec.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  { files: ['src/common/**'], rules: { 'no-restricted-imports': ['error', { patterns: [{ group: ['**/modules/**'], message: 'common/ must not depend on modules/.' }] }] } },
  { files: ['src/config/**'], rules: { 'no-restricted-imports': ['error', { patterns: [{ group: ['../common/**', '../modules/**', '../database/**'], message: 'config/ depends on nothing else in src/.' }] }] } },
  { files: ['src/modules/moderation/**'], rules: { 'no-restricted-imports': ['error', { patterns: [crossModule('uploads')] }] } },
  { files: ['src/modules/webhooks/**'], rules: { 'no-restricted-imports': ['error', { patterns: [crossModule('uploads')] }] } },
  { files: ['src/modules/audit/**'], rules: { 'no-restricted-imports': ['error', { patterns: [crossModule('admin')] }] } },
);
