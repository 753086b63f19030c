// Type-checked lint plus the layer rules from ../shared/STYLE.md:
// core ← media, ai, sip ← call ← api ← main. Only sip/ may import drachtio-srf.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const layer = (dir, forbidden, extra = []) => ({
  files: [`src/${dir}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          ...forbidden.map((f) => ({
            group: [`**/${f}/**`, `../${f}/*`, `../../${f}/*`],
            message: `src/${dir} must not import src/${f} (dependency direction, STYLE.md)`,
          })),
          { group: ['**/main.js'], message: 'only main.ts composes the application' },
        ],
        paths: extra,
      },
    ],
  },
});
const noDrachtio = [{ name: 'drachtio-srf', message: 'only src/sip may import drachtio-srf' }];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'test/fixtures/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      'no-console': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  layer('core', ['media', 'ai', 'sip', 'call', 'api', 'config'], noDrachtio),
  layer('media', ['ai', 'sip', 'call', 'api', 'config'], noDrachtio),
  layer('ai', ['media', 'sip', 'call', 'api', 'config'], noDrachtio),
  layer('sip', ['media', 'ai', 'call', 'api', 'config']),
  layer('call', ['api', 'config'], noDrachtio),
  layer('api', ['media', 'ai', 'sip', 'config'], noDrachtio),
  layer('config', ['media', 'ai', 'sip', 'call', 'api'], noDrachtio),
  { files: ['src/main.ts', 'test/**/*.ts', 'bench/**/*.ts'], rules: { 'no-console': 'off' } },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
);
