// Plain `node` (not vitest's transform) can load what production loads: alawmulaw through its default
// export under ESM, and the built dist/main.js, which exits 78 with one line on a bad config.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
/** tsc on the whole project takes a while on a cold cache. */
const BUILD_TIMEOUT_MS = 180_000;
const RUN_TIMEOUT_MS = 20_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { cwd: options.cwd, env: options.env ?? process.env, timeout: options.timeoutMs },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A child environment with nothing from this process but PATH (so no stray config keys leak in). */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '', ...extra };
}

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'voxgate-smoke-'));
  // Bare specifiers resolve from the importing file's directory upwards: let them find the repo's packages.
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'), 'dir');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('alawmulaw under plain Node ESM', () => {
  it("decodes samples through `import alawmulaw from 'alawmulaw'`", async () => {
    const script = join(dir, 'alawmulaw-default.mjs');
    writeFileSync(
      script,
      [
        "import alawmulaw from 'alawmulaw';",
        'const { mulaw, alaw } = alawmulaw;',
        'console.log(JSON.stringify({',
        '  mulawFF: mulaw.decodeSample(0xff),',
        '  mulaw00: mulaw.decodeSample(0x00),',
        '  alawD5: alaw.decodeSample(0xd5),',
        '  roundTrip: mulaw.decodeSample(mulaw.encodeSample(1000)),',
        '}));',
      ].join('\n'),
    );
    const result = await run(process.execPath, [script], { cwd: REPO, timeoutMs: RUN_TIMEOUT_MS });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const decoded = JSON.parse(result.stdout) as Record<string, number>;
    expect(decoded.mulawFF).toBe(0);
    expect(decoded.mulaw00).toBe(-32124);
    expect(decoded.alawD5).toBe(8);
    expect(Math.abs((decoded.roundTrip ?? 0) - 1000)).toBeLessThan(64);
  });
});

describe('built dist/ under plain Node', () => {
  let build: Run;

  beforeAll(async () => {
    build = await run('npx', ['tsc', '-p', 'tsconfig.build.json'], {
      cwd: REPO,
      timeoutMs: BUILD_TIMEOUT_MS,
    });
  }, BUILD_TIMEOUT_MS + 10_000);

  it('builds without type errors', () => {
    expect(build.stdout + build.stderr).not.toMatch(/error TS/);
    expect(build.code).toBe(0);
    expect(existsSync(join(REPO, 'dist', 'main.js'))).toBe(true);
  });

  it('decodes G.711 through dist/media/g711.js (the ESM default-import path)', async () => {
    const script = join(dir, 'g711-dist.mjs');
    const g711 = pathToFileURL(join(REPO, 'dist', 'media', 'g711.js')).href;
    writeFileSync(
      script,
      [
        `import { decodeG711, encodeG711, SILENCE_BYTE } from ${JSON.stringify(g711)};`,
        "const pcm = decodeG711('PCMU', Uint8Array.of(0xff, 0x00));",
        "const back = encodeG711('PCMA', decodeG711('PCMA', Uint8Array.of(SILENCE_BYTE.PCMA)));",
        'console.log(JSON.stringify({ pcm: Array.from(pcm), back: Array.from(back) }));',
      ].join('\n'),
    );
    const result = await run(process.execPath, [script], { cwd: REPO, timeoutMs: RUN_TIMEOUT_MS });
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({ pcm: [0, -32124], back: [0xd5] });
  });

  it('exits 78 with one "config error: RTP_PORT_MIN=" line when RTP_PORT_MIN=abc', async () => {
    const result = await run(process.execPath, [join(REPO, 'dist', 'main.js')], {
      cwd: dir, // no .env here
      env: cleanEnv({ RTP_PORT_MIN: 'abc' }),
      timeoutMs: RUN_TIMEOUT_MS,
    });
    expect(result.code).toBe(78);
    expect(result.stderr).toMatch(/^config error: RTP_PORT_MIN="abc" is not a number; expected .+\n$/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stdout).toBe('');
  });

  it('exits 78 naming OPENAI_API_KEY, without printing secrets, when AI_PROVIDER=openai has no key', async () => {
    const result = await run(process.execPath, [join(REPO, 'dist', 'main.js')], {
      cwd: dir,
      env: cleanEnv({ AI_PROVIDER: 'openai', DRACHTIO_SECRET: 'smoke-secret-value' }),
      timeoutMs: RUN_TIMEOUT_MS,
    });
    expect(result.code).toBe(78);
    expect(result.stderr).toMatch(/^config error: OPENAI_API_KEY /);
    expect(result.stderr).not.toContain('smoke-secret-value');
  });
});
