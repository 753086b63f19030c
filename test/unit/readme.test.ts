import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS } from '../../src/config/schema.js';
import { REPO_ROOT } from '../helpers/processes.js';

describe('README', () => {
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const defaults = readFileSync(path.join(REPO_ROOT, 'config', 'default.env'), 'utf8');

  it('documents every configuration key, and config/default.env gives each a default', () => {
    const undocumented = CONFIG_KEYS.filter((key) => !readme.includes(`\`${key}\``));
    expect(undocumented).toEqual([]);
    const noDefault = CONFIG_KEYS.filter((key) => !new RegExp(`^${key}=`, 'm').test(defaults));
    expect(noDefault).toEqual([]);
  });

  it('keeps the two quick-start commands', () => {
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm ci && npm test');
  });
});
