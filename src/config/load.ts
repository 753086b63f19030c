import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseDotenv } from 'dotenv';
import { parseConfig, type Config } from './config.js';

/** config/default.env, found relative to this module in both src/ (tsx) and dist/ (built) layouts. */
export const DEFAULTS_FILE = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'config',
  'default.env',
);

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  defaultsFile?: string;
  /** A .env file; read only if it exists. */
  dotenvFile?: string;
}

/** The only code that reads process.env: defaults < .env < environment, then validation. */
export function loadConfig(options: LoadOptions = {}): Config {
  return parseConfig(loadRawEnv(options));
}

/**
 * The merged, unvalidated key/value view (defaults < .env < environment). For commands that validate
 * their own inputs, such as `voxgate twilio setup`.
 */
export function loadRawEnv(options: LoadOptions = {}): Record<string, string | undefined> {
  const env = options.env ?? process.env;
  const defaults = parseDotenv(readFileSync(options.defaultsFile ?? DEFAULTS_FILE));
  const dotenvFile = options.dotenvFile ?? join(process.cwd(), '.env');
  const local = existsSync(dotenvFile) ? parseDotenv(readFileSync(dotenvFile)) : {};
  return { ...defaults, ...local, ...env };
}
