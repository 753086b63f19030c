import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseDotenv } from 'dotenv';
import { describe, it, expect } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CONFIG_KEYS, SECRET_KEYS, configFields, type ConfigKey } from '../../src/config/schema.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DOCKER_DIR = join(ROOT, 'docker');
const COMPOSE_FILE = join(DOCKER_DIR, 'compose.yaml');
const DOCKERFILE = join(DOCKER_DIR, 'Dockerfile');
const EXAMPLE_ENV = join(ROOT, 'config', 'example.env');
const DEFAULT_ENV = join(ROOT, 'config', 'default.env');

/** Variables only docker/compose.yaml reads (drachtio-server's command line); voxgate never sees them as config. */
const COMPOSE_ONLY_VARS = ['SIP_PORT', 'SIP_CONTACT_ADDRESS', 'DRACHTIO_EXTERNAL_IP'] as const;
const KNOWN_VARS = new Set<string>([...CONFIG_KEYS, ...COMPOSE_ONLY_VARS]);
const isConfigKey = (k: string): k is ConfigKey => (CONFIG_KEYS as readonly string[]).includes(k);

/** Wait this long for one `docker-compose config` run: it only parses files, but python start-up is slow. */
const COMPOSE_CONFIG_TIMEOUT_MS = 20_000;

const envValue = z.union([z.string(), z.number(), z.boolean()]).transform(String);
const serviceSchema = z.object({
  image: z.string().optional(),
  build: z.object({ context: z.string(), dockerfile: z.string() }).optional(),
  network_mode: z.string().optional(),
  command: z.array(z.string()).optional(),
  environment: z.record(z.string(), envValue).optional(),
  env_file: z.array(z.string()).optional(),
  // Short form (a list) or long form (a map of service name to condition), as `config` prints it.
  depends_on: z
    .union([z.array(z.string()), z.record(z.string(), z.unknown()).transform((m) => Object.keys(m))])
    .optional(),
  init: z.boolean().optional(),
  restart: z.string().optional(),
  stop_grace_period: z.string().optional(),
});
const composeSchema = z.object({ services: z.object({ drachtio: serviceSchema, voxgate: serviceSchema }) });

const composeText = readFileSync(COMPOSE_FILE, 'utf8');
const compose = composeSchema.parse(parseYaml(composeText));
const { drachtio, voxgate } = compose.services;
const exampleText = readFileSync(EXAMPLE_ENV, 'utf8');
const example = parseDotenv(exampleText);
const defaults = parseDotenv(readFileSync(DEFAULT_ENV));

/** Names interpolated anywhere in the file, comments included (a commented line is one edit from live). */
function referencedVars(text: string): Set<string> {
  const unescaped = text.replaceAll('$$', '');
  const names = [...unescaped.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1] ?? '');
  return new Set(names);
}

/** Keys set in an env file, including commented-out `# KEY=value` examples. */
function envFileKeys(text: string): Set<string> {
  return new Set([...text.matchAll(/^\s*(?:#\s*)?([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1] ?? ''));
}

/** The argument after `flag` in a list-form command. */
function argAfter(command: readonly string[] | undefined, flag: string): string | undefined {
  const i = (command ?? []).indexOf(flag);
  return i < 0 ? undefined : command?.[i + 1];
}

/** Compose durations such as `45s`, `1m30s`, `500ms`, in milliseconds. */
function durationMs(text: string): number {
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.map((p) => p[0]).join('') !== text) throw new RangeError(`not a compose duration: ${text}`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * (unit[p[2] ?? ''] ?? NaN), 0);
}

describe('docker/compose.yaml', () => {
  it('runs both services with host networking (RTP port ranges cannot go through Docker NAT)', () => {
    expect(drachtio.network_mode).toBe('host');
    expect(voxgate.network_mode).toBe('host');
  });

  it('uses the official drachtio-server image pinned to a version tag', () => {
    expect(drachtio.image).toMatch(/^drachtio\/drachtio-server:\d+\.\d+\.\d+$/);
  });

  it('builds voxgate from the repository root with docker/Dockerfile', () => {
    expect(voxgate.build).toEqual({ context: '..', dockerfile: 'docker/Dockerfile' });
    expect(existsSync(resolve(DOCKER_DIR, '..', 'docker/Dockerfile'))).toBe(true);
  });

  it('sets only config keys voxgate knows in its environment', () => {
    const keys = Object.keys(voxgate.environment ?? {});
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.filter((k) => !isConfigKey(k))).toEqual([]);
  });

  it('interpolates only config keys or documented compose-only variables', () => {
    const refs = [...referencedVars(composeText)];
    expect(refs).toContain('DRACHTIO_PORT');
    expect(refs.filter((v) => !KNOWN_VARS.has(v))).toEqual([]);
    const documented = envFileKeys(exampleText);
    expect(COMPOSE_ONLY_VARS.filter((v) => !documented.has(v))).toEqual([]);
  });

  it('points voxgate at the admin address and port drachtio-server listens on', () => {
    const address = argAfter(drachtio.command, '--address');
    const port = argAfter(drachtio.command, '--port');
    expect(address).toBe('127.0.0.1');
    expect(voxgate.environment?.DRACHTIO_HOST).toBe(address);
    expect(voxgate.environment?.DRACHTIO_PORT).toBe(port);
    // Both sides read the same variable, and its fallback is voxgate's own default.
    const m = /^\$\{DRACHTIO_PORT(?::-(\d+))?\}$/.exec(port ?? '');
    expect(m, `--port ${port} does not come from \${DRACHTIO_PORT}`).not.toBeNull();
    if (m?.[1] !== undefined) expect(m[1]).toBe(defaults.DRACHTIO_PORT);
    expect(voxgate.depends_on).toContain('drachtio');
  });

  it('gives drachtio-server and voxgate the same DRACHTIO_SECRET from .env', () => {
    // drachtio-server reads DRACHTIO_SECRET from its environment; it must come from --env-file, with no fallback.
    expect(drachtio.environment?.DRACHTIO_SECRET).toMatch(/^\$\{DRACHTIO_SECRET(?::?\?[^}]*)?\}$/);
    // voxgate takes it (and OPENAI_API_KEY) from the same .env via env_file.
    expect(voxgate.env_file).toEqual(['../.env']);
    expect(composeText).toContain('docker compose -f docker/compose.yaml --env-file .env up');
  });

  it('holds no secret values inline', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const [key, value] of Object.entries(service.environment ?? {})) {
        if (!SECRET_KEYS.includes(key as ConfigKey)) continue;
        expect(value, `${name}.${key}`).toMatch(new RegExp(`^\\$\\{${key}(?::?\\?[^}]*)?\\}$`));
      }
    }
    expect(
      Object.keys(voxgate.environment ?? {}).filter((k) => SECRET_KEYS.includes(k as ConfigKey)),
    ).toEqual([]);
    expect(composeText).not.toMatch(/sk-[A-Za-z0-9_-]{8,}/);
    // Any uncommented `KEY: value` or `- KEY=value` for a secret must be an interpolation.
    expect(composeText).not.toMatch(
      /^\s*(?:-\s*)?['"]?(OPENAI_API_KEY|DRACHTIO_SECRET)['"]?\s*[:=][ \t]*(?!['"]?\$\{)\S/m,
    );
  });

  it('gives voxgate longer to stop than its shutdown grace period, behind an init process', () => {
    expect(durationMs(voxgate.stop_grace_period ?? '10s')).toBeGreaterThan(
      Number(defaults.SHUTDOWN_GRACE_MS),
    );
    expect(voxgate.init).toBe(true);
    expect(voxgate.restart).toBe('unless-stopped');
  });
});

describe('config/example.env', () => {
  it('sets only config keys or compose-only variables', () => {
    const keys = [...envFileKeys(exampleText)];
    expect(keys.filter((k) => !KNOWN_VARS.has(k))).toEqual([]);
  });

  it('gives every config key a value voxgate would accept', () => {
    for (const [key, value] of Object.entries(example)) {
      if (!isConfigKey(key)) continue;
      expect(configFields[key].schema.safeParse(value).success, `${key}=${value}`).toBe(true);
    }
  });

  it('holds no real-looking secret', () => {
    expect(example.OPENAI_API_KEY).toBe('');
    expect(exampleText).not.toMatch(/sk-[A-Za-z0-9_-]{8,}/);
    expect(example.DRACHTIO_SECRET).not.toBe(defaults.DRACHTIO_SECRET);
  });
});

describe('docker/Dockerfile', () => {
  const lines = readFileSync(DOCKERFILE, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages = lines.reduce<string[][]>((acc, l) => {
    if (/^FROM\s/i.test(l)) acc.push([]);
    acc.at(-1)?.push(l);
    return acc;
  }, []);
  const final = stages.at(-1) ?? [];

  it('is a multi-stage build on node:20-bookworm-slim', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage[0]).toMatch(/^FROM node:20-bookworm-slim\b/);
  });

  it('runs the final stage as the non-root node user with production dependencies only', () => {
    expect(final).toContain('USER node');
    expect(final.some((l) => /^RUN\b.*\bnpm ci\b.*--omit=dev\b/.test(l))).toBe(true);
    expect(final).toContain('ENV NODE_ENV=production');
    expect(final.at(-1)).toBe('CMD ["node", "dist/main.js"]');
  });

  it('ships config/default.env next to dist/ where the loader looks for it', () => {
    expect(final.some((l) => /^COPY\s+config\s+\.\/config$/.test(l))).toBe(true);
    expect(final.some((l) => /^COPY\s+--from=\S+\s+\/app\/dist\s+\.\/dist$/.test(l))).toBe(true);
    expect(final).toContain('WORKDIR /app');
  });

  it('keeps .env, node_modules and dist out of the build context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim());
    for (const entry of ['.env', 'node_modules', 'dist', '.git']) expect(ignored).toContain(entry);
  });
});

describe('docker compose config', () => {
  /** Compose implementations present on this machine: v2 plugin and/or the Debian v1 package. */
  const tools = [
    { name: 'docker compose', cmd: 'docker', pre: ['compose'] },
    { name: 'docker-compose', cmd: 'docker-compose', pre: [] },
  ].filter((t) => spawnSync(t.cmd, [...t.pre, 'version'], { stdio: 'ignore' }).status === 0);

  /**
   * Runs `<tool> -f docker/compose.yaml --env-file .env config` in a scratch copy of the repository
   * layout: env_file `../.env` must exist, and the real repository's .env is the user's to keep.
   */
  function composeConfig(tool: (typeof tools)[number], envText: string, extra: string[] = []) {
    const dir = mkdtempSync(join(tmpdir(), 'voxgate-compose-'));
    try {
      mkdirSync(join(dir, 'docker'));
      copyFileSync(COMPOSE_FILE, join(dir, 'docker', 'compose.yaml'));
      copyFileSync(DOCKERFILE, join(dir, 'docker', 'Dockerfile'));
      writeFileSync(join(dir, '.env'), envText);
      const args = [...tool.pre, '-f', 'docker/compose.yaml', '--env-file', '.env', 'config', ...extra];
      return spawnSync(tool.cmd, args, { cwd: dir, encoding: 'utf8', timeout: COMPOSE_CONFIG_TIMEOUT_MS });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('accepts the compose file with config/example.env as .env', () => {
    if (tools.length === 0) {
      console.log('SKIPPED: docker-compose not installed (apt-get install docker-compose)');
      return;
    }
    for (const tool of tools) {
      const quiet = composeConfig(tool, exampleText, ['-q']);
      expect(quiet.status, `${tool.name}: ${quiet.stderr}`).toBe(0);

      // The resolved file: both sides of the admin socket agree after interpolation.
      const full = composeConfig(tool, `${exampleText}\nDRACHTIO_PORT=9123\n`);
      expect(full.status, `${tool.name}: ${full.stderr}`).toBe(0);
      const resolved = composeSchema.parse(parseYaml(full.stdout));
      expect(argAfter(resolved.services.drachtio.command, '--port')).toBe('9123');
      expect(resolved.services.voxgate.environment?.DRACHTIO_PORT).toBe('9123');
      expect(resolved.services.drachtio.environment?.DRACHTIO_SECRET).toBe(example.DRACHTIO_SECRET);
    }
  });

  it('refuses to start without DRACHTIO_SECRET in .env', () => {
    if (tools.length === 0) {
      console.log('SKIPPED: docker-compose not installed (apt-get install docker-compose)');
      return;
    }
    const withoutSecret = exampleText.replace(/^DRACHTIO_SECRET=.*$/m, '');
    for (const tool of tools) {
      const result = composeConfig(tool, withoutSecret, ['-q']);
      expect(result.status, tool.name).not.toBe(0);
      expect(result.stderr).toMatch(/DRACHTIO_SECRET/);
    }
  });
});
