// Configuration: defaults < .env < environment, and one readable line per bad value (never a secret).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../src/config/config.js';
import { DEFAULTS_FILE, loadConfig } from '../../../src/config/load.js';

let dir: string;
/** A path that does not exist: "no .env in the working directory". */
let noDotenv: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'voxgate-config-'));
  noDotenv = join(dir, 'absent.env');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function dotenv(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** loadConfig against the real config/default.env, no .env, and only `env` as the environment. */
function load(env: Record<string, string>, dotenvFile = noDotenv) {
  return loadConfig({ env, dotenvFile });
}

/** The ConfigError thrown by loading `env`, failing the test if none is thrown. */
function configErrorOf(env: Record<string, string>): ConfigError {
  try {
    load(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('loads config/default.env alone into a valid echo configuration', () => {
    expect(DEFAULTS_FILE.endsWith(join('config', 'default.env'))).toBe(true);
    const config = load({});
    expect(config.ai.provider).toBe('echo');
    expect(config.drachtio).toEqual({
      host: '127.0.0.1',
      port: 9022,
      secret: 'cymru',
      reconnectMaxDelayMs: 5000,
    });
    expect(config.rtp.portMin).toBe(40000);
    expect(config.rtp.portMax).toBe(40999);
    expect(config.rtp.codecPreference).toEqual(['PCMU', 'PCMA']);
    expect(config.rtp.publicAddress).toBe('');
    expect(config.ai.echo.delayMs).toBe(400);
    expect(config.ai.openai.url).toBe('wss://api.openai.com/v1/realtime');
    expect(config.ai.openai.model).toBe('gpt-realtime');
    expect(config.log).toEqual({ level: 'info', pii: false });
  });

  it('lets .env override the defaults and the environment override .env', () => {
    const file = dotenv('override.env', 'LOG_LEVEL=debug\nECHO_DELAY_MS=100\nMAX_CONCURRENT_CALLS=7\n');
    const config = load({ LOG_LEVEL: 'warn', MAX_CONCURRENT_CALLS: '9' }, file);
    expect(config.log.level).toBe('warn'); // env beats .env
    expect(config.calls.maxConcurrent).toBe(9); // env beats .env
    expect(config.ai.echo.delayMs).toBe(100); // .env beats default
    expect(config.rtp.portMin).toBe(40000); // default untouched
  });

  it('ignores a .env file that does not exist', () => {
    expect(load({ ECHO_DELAY_MS: '5' }).ai.echo.delayMs).toBe(5);
  });

  it('parses codec lists case-insensitively with spaces, in order', () => {
    expect(load({ CODEC_PREFERENCE: ' pcma , PCMU ' }).rtp.codecPreference).toEqual(['PCMA', 'PCMU']);
  });

  it.each([
    ['true', true],
    ['FALSE', false],
    ['1', true],
    ['0', false],
    ['yes', true],
    ['no', false],
  ])('reads LOG_PII=%s as %s', (value, expected) => {
    expect(load({ LOG_PII: value }).log.pii).toBe(expected);
  });

  it('accepts a ws:// OPENAI_REALTIME_URL with host, port and path (tests and proxies)', () => {
    const config = load({ OPENAI_REALTIME_URL: 'ws://127.0.0.1:1234/v1/realtime' });
    expect(config.ai.openai.url).toBe('ws://127.0.0.1:1234/v1/realtime');
  });

  it.each(['refer', 'bridge', 'warm'] as const)('accepts TRANSFER_MODE=%s', (mode) => {
    expect(load({ TRANSFER_MODE: mode }).transfer.mode).toBe(mode);
  });

  it('accepts AI_PROVIDER=openai when OPENAI_API_KEY is set', () => {
    const config = load({ AI_PROVIDER: 'openai', OPENAI_API_KEY: 'sk-test-123' });
    expect(config.ai.provider).toBe('openai');
    expect(config.ai.openai.apiKey).toBe('sk-test-123');
  });

  it('accepts config/example.env as a .env once an API key is supplied', () => {
    const config = loadConfig({
      env: { OPENAI_API_KEY: 'sk-test' },
      dotenvFile: join(DEFAULTS_FILE, '..', 'example.env'),
    });
    expect(config.ai.provider).toBe('openai');
    expect(config.drachtio.secret).toBe('replace-with-a-long-random-string');
  });
});

describe('configuration errors', () => {
  // [key, bad value, the problem (regex), the expected form (regex)]
  const cases: [string, string, RegExp, RegExp][] = [
    ['RTP_PORT_MIN', 'abc', /is not a number/, /even UDP port 1024-65534/],
    ['RTP_PORT_MIN', '40001', /is odd/, /even UDP port/],
    ['RTP_PORT_MIN', '80', /is below 1024/, /even UDP port 1024-65534/],
    ['RTP_PORT_MAX', '40000', /is not above RTP_PORT_MIN \(40000\)/, /above RTP_PORT_MIN/],
    ['RTP_PORT_MAX', '30000', /is not above RTP_PORT_MIN \(40000\)/, /above RTP_PORT_MIN/],
    ['DRACHTIO_PORT', '70000', /is above 65535/, /TCP port 1-65535/],
    ['DRACHTIO_PORT', '9022.5', /is not an integer/, /TCP port 1-65535/],
    ['AI_PROVIDER', 'foo', /is not a known provider/, /one of echo, openai/],
    ['CODEC_PREFERENCE', 'G722', /codec other than PCMU or PCMA/, /comma list of PCMU, PCMA/],
    ['CODEC_PREFERENCE', 'PCMU,PCMU', /repeats a codec/, /comma list of PCMU, PCMA/],
    ['CODEC_PREFERENCE', '', /is empty/, /comma list of PCMU, PCMA/],
    ['CODEC_PREFERENCE', ' , ', /is empty/, /comma list of PCMU, PCMA/],
    ['OPENAI_REALTIME_URL', 'http://x', /not a ws:\/\/ or wss:\/\/ URL/, /ws:\/\/ or wss:\/\/ URL/],
    ['OPENAI_REALTIME_URL', 'not a url', /not a ws:\/\/ or wss:\/\/ URL/, /ws:\/\/ or wss:\/\/ URL/],
    ['LOG_LEVEL', 'loud', /is not a level/, /one of fatal, error, warn, info, debug, trace, silent/],
    ['LOG_PII', 'maybe', /is not a boolean/, /true or false/],
    ['RTP_BIND_ADDRESS', 'localhost', /is not an IP address/, /IPv4 or IPv6 address/],
    ['RTP_PUBLIC_ADDRESS', '300.1.1.1', /is not an IP address/, /IP address, or empty/],
    ['ECHO_DELAY_MS', '-1', /is below 0/, /milliseconds 0-10000/],
    ['TRANSFER_MODE', 'blind', /is not a transfer mode/, /refer, bridge or warm/],
  ];

  it.each(cases)(
    '%s=%j gives one line naming the key, the problem and the expected form',
    (key, value, problem, expected) => {
      const error = configErrorOf({ [key]: value });
      expect(error.key).toBe(key);
      expect(error.message).not.toContain('\n');
      expect(error.message.startsWith(`config error: ${key}=`)).toBe(true);
      expect(error.message).toContain(`=${JSON.stringify(value)}`);
      expect(error.problem).toMatch(problem);
      expect(error.message).toMatch(problem);
      expect(error.expected).toMatch(expected);
      expect(error.message).toMatch(new RegExp(`; expected .*${expected.source}`));
    },
  );

  it.each(['MEDIA_TIMEOUT_MS', 'MEDIA_INITIAL_TIMEOUT_MS', 'SHUTDOWN_GRACE_MS', 'ECHO_DELAY_MS'])(
    'rejects an empty %s instead of reading it as 0',
    (key) => {
      const error = configErrorOf({ [key]: '' });
      expect(error.key).toBe(key);
    },
  );

  it('reports an empty RTP_PORT_MIN as empty or not a number', () => {
    const error = configErrorOf({ RTP_PORT_MIN: '' });
    expect(error.problem).toMatch(/is empty|is not a number/);
  });

  it('rejects a port written in hex or exponent form', () => {
    expect(configErrorOf({ RTP_PORT_MIN: '0x9c40' }).key).toBe('RTP_PORT_MIN');
  });

  it('names OPENAI_API_KEY when AI_PROVIDER=openai has no key', () => {
    const error = configErrorOf({ AI_PROVIDER: 'openai' });
    expect(error.key).toBe('OPENAI_API_KEY');
    expect(error.message).toMatch(/^config error: OPENAI_API_KEY is empty; expected .*AI_PROVIDER=openai/);
  });

  it('treats a whitespace-only OPENAI_API_KEY as missing when AI_PROVIDER=openai', () => {
    const error = configErrorOf({ AI_PROVIDER: 'openai', OPENAI_API_KEY: '   ' });
    expect(error.key).toBe('OPENAI_API_KEY');
  });

  it('names a key that is missing altogether', () => {
    // An environment that sets a key to undefined hides the default (parseConfig sees no value).
    let caught: unknown;
    try {
      parseConfig({});
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).message).toMatch(
      /^config error: DRACHTIO_HOST is missing; expected a host name or IP$/,
    );
  });

  it('shows a secret as <redacted> when the error names it', () => {
    const error = configErrorOf({ DRACHTIO_SECRET: '' });
    expect(error.key).toBe('DRACHTIO_SECRET');
    expect(error.message).toBe(
      'config error: DRACHTIO_SECRET=<redacted> is empty; expected a non-empty string',
    );
  });

  it('never puts secret values into an error about another key', () => {
    const secrets = { DRACHTIO_SECRET: 'drachtio-s3cret-value', OPENAI_API_KEY: 'live-key-should-not-leak' };
    const error = configErrorOf({ ...secrets, AI_PROVIDER: 'openai', LOG_LEVEL: 'loud' });
    expect(error.key).toBe('LOG_LEVEL');
    for (const value of Object.values(secrets)) {
      expect(error.message).not.toContain(value);
      expect(JSON.stringify(error)).not.toContain(value);
    }
  });

  it('keeps the message on one line even when the bad value contains a newline', () => {
    const error = configErrorOf({ LOG_LEVEL: 'info\nLOG_PII=true' });
    expect(error.key).toBe('LOG_LEVEL');
    expect(error.message).not.toMatch(/[\r\n]/);
  });

  it('shortens a very long bad value', () => {
    const error = configErrorOf({ OPENAI_REALTIME_URL: `http://${'x'.repeat(500)}` });
    expect(error.message.length).toBeLessThan(200);
  });
});
