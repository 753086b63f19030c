import type { z } from 'zod';
import { configFields, type ConfigKey } from './schema.js';
import { parseIpv4Network } from '../core/cidr.js';

type Raw = { [K in ConfigKey]: z.output<(typeof configFields)[K]['schema']> };

export type CodecName = 'PCMU' | 'PCMA';
export type ProviderName = Raw['AI_PROVIDER'];

/** The validated, typed configuration that main.ts hands to every module. */
export interface Config {
  drachtio: { host: string; port: number; secret: string; reconnectMaxDelayMs: number };
  sip: {
    userAgent: string;
    /** INVITEs from other sources get 403; empty = any source. CIDRs, with "twilio" expanded. */
    allowedSources: string[];
    /** Outbound trunk; `uri` empty means outbound calls are disabled. */
    trunk: {
      uri: string;
      username: string;
      password: string;
      callerId: string;
      proxy: string;
      ringTimeoutMs: number;
    };
  };
  rtp: {
    bindAddress: string;
    /** Empty string means "auto-detect" (resolved in main.ts). */
    publicAddress: string;
    portMin: number;
    portMax: number;
    codecPreference: CodecName[];
    initialTimeoutMs: number;
    timeoutMs: number;
  };
  calls: { maxConcurrent: number; busyRetryAfterS: number; shutdownGraceMs: number };
  api: {
    port: number;
    bindAddress: string;
    /** Empty: no auth (allowed only on a loopback bind). */
    token: string;
    allowedDestinations: string[];
    rateLimitPerMinute: number;
  };
  webhooks: { url: string; secret: string };
  /** Registration to a PBX as an extension; `registrar` empty = off. */
  registration: { registrar: string; user: string; password: string; expiresS: number };
  /** Phrases in the caller's speech that ask for a human, for providers without function calling. */
  transferKeywords: string[];
  transfer: {
    targets: ReadonlyMap<string, string>;
    mode: 'refer' | 'bridge' | 'warm';
    timeoutMs: number;
    dtmfKey: string;
  };
  dtmfToAgent: boolean;
  ai: {
    provider: ProviderName;
    /** Answers when `provider` cannot connect at call start; undefined = none. */
    fallbackProvider: ProviderName | undefined;
    /** SIP headers of inbound INVITEs passed to the agent as call context (lower-cased names). */
    contextHeaders: string[];
    /** JSON file of operator-defined HTTP tools; empty = none. */
    toolsFile: string;
    connectTimeoutMs: number;
    instructions: string;
    greeting: string;
    echo: { delayMs: number };
    openai: { apiKey: string; url: string; model: string; voice: string; transcriptionModel: string };
    doubao: {
      url: string;
      appId: string;
      accessKey: string;
      apiKey: string;
      model: string;
      speaker: string;
      botName: string;
      systemRole: string;
      speakingStyle: string;
      outputFormat: 'pcm_s16le' | 'pcm';
      hangUpOnUserExit: boolean;
    };
    gemini: {
      backend: 'gemini-api' | 'vertex';
      apiKey: string;
      project: string;
      location: string;
      baseUrl: string | undefined;
      model: string;
      voice: string;
    };
  };
  log: { level: Raw['LOG_LEVEL']; pii: boolean };
}

/** A bad or missing configuration value. `message` is the one line printed before exit. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly key: string,
    readonly problem: string,
    readonly expected: string,
    shownValue: string | undefined,
  ) {
    super(
      `config error: ${key}${shownValue === undefined ? '' : `=${shownValue}`} ${problem}; expected ${expected}`,
    );
  }
}

const SECRET_HINT = /KEY|SECRET|PASSWORD|TOKEN/;

function show(key: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (SECRET_HINT.test(key)) return '<redacted>';
  return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
}

/**
 * Validate a flat key/value source (defaults < .env < environment, merged by the caller).
 * Throws ConfigError naming the first bad key.
 */
export function parseConfig(source: Readonly<Record<string, string | undefined>>): Config {
  const raw: Partial<Record<ConfigKey, unknown>> = {};
  for (const [key, field] of Object.entries(configFields) as [
    ConfigKey,
    (typeof configFields)[ConfigKey],
  ][]) {
    const value = source[key];
    if (value === undefined) throw new ConfigError(key, 'is missing', field.expected, undefined);
    const result = field.schema.safeParse(value);
    if (!result.success) {
      const problem = result.error.issues[0]?.message ?? 'is invalid';
      throw new ConfigError(key, problem, field.expected, show(key, value));
    }
    raw[key] = result.data;
  }
  const r = raw as Raw;

  if (r.RTP_PORT_MIN % 2 !== 0) {
    throw new ConfigError(
      'RTP_PORT_MIN',
      'is odd',
      'an even UDP port (RTP uses even ports)',
      show('RTP_PORT_MIN', source.RTP_PORT_MIN),
    );
  }
  if (r.RTP_PORT_MAX <= r.RTP_PORT_MIN) {
    throw new ConfigError(
      'RTP_PORT_MAX',
      `is not above RTP_PORT_MIN (${r.RTP_PORT_MIN})`,
      'a port above RTP_PORT_MIN',
      show('RTP_PORT_MAX', source.RTP_PORT_MAX),
    );
  }
  if (r.SIP_TRUNK_URI !== '' && r.SIP_CALLER_ID === '') {
    throw new ConfigError(
      'SIP_CALLER_ID',
      'is empty',
      'an E.164 number (required when SIP_TRUNK_URI is set)',
      undefined,
    );
  }
  if (r.SIP_TRUNK_USERNAME !== '' && r.SIP_TRUNK_PASSWORD === '') {
    throw new ConfigError(
      'SIP_TRUNK_PASSWORD',
      'is empty',
      'the trunk password (required with SIP_TRUNK_USERNAME)',
      undefined,
    );
  }
  if (
    r.AI_PROVIDER === 'gemini' &&
    !r.GOOGLE_GENAI_USE_VERTEXAI &&
    r.GEMINI_API_KEY === '' &&
    r.GOOGLE_API_KEY === ''
  ) {
    throw new ConfigError(
      'GEMINI_API_KEY',
      'is empty',
      'a Gemini API key, or GOOGLE_API_KEY (required when AI_PROVIDER=gemini without Vertex AI)',
      undefined,
    );
  }
  if (r.AI_PROVIDER === 'gemini' && r.GOOGLE_GENAI_USE_VERTEXAI && r.GOOGLE_CLOUD_PROJECT === '') {
    throw new ConfigError(
      'GOOGLE_CLOUD_PROJECT',
      'is empty',
      'a Google Cloud project id (required with GOOGLE_GENAI_USE_VERTEXAI=true)',
      undefined,
    );
  }
  const badSource = r.SIP_ALLOWED_SOURCES.split(',')
    .map((v) => v.trim())
    .find((v) => v !== '' && v.toLowerCase() !== 'twilio' && parseIpv4Network(v) === undefined);
  if (badSource !== undefined) {
    throw new ConfigError(
      'SIP_ALLOWED_SOURCES',
      `has ${JSON.stringify(badSource)}, which is not an IPv4 address or CIDR`,
      'comma-separated IPv4 CIDRs and/or twilio',
      undefined,
    );
  }
  if (r.AI_FALLBACK_PROVIDER === r.AI_PROVIDER) {
    throw new ConfigError(
      'AI_FALLBACK_PROVIDER',
      `is the same as AI_PROVIDER (${r.AI_PROVIDER})`,
      'a different provider, or empty',
      undefined,
    );
  }
  const bad = r.CALLER_CONTEXT_HEADERS.split(',')
    .map((h) => h.trim())
    .find((h) => h !== '' && !/^[A-Za-z0-9-]+$/.test(h));
  if (bad !== undefined) {
    throw new ConfigError(
      'CALLER_CONTEXT_HEADERS',
      `has ${JSON.stringify(bad)}, which is not a header name`,
      'comma-separated SIP header names',
      undefined,
    );
  }
  if (r.WEBHOOK_URL !== '' && r.WEBHOOK_SECRET === '') {
    throw new ConfigError(
      'WEBHOOK_SECRET',
      'is empty',
      'a secret to sign webhooks with (required with WEBHOOK_URL)',
      undefined,
    );
  }
  if (r.SIP_REGISTRAR !== '' && r.SIP_REGISTER_USER === '') {
    throw new ConfigError(
      'SIP_REGISTER_USER',
      'is empty',
      'the extension to register (required with SIP_REGISTRAR)',
      undefined,
    );
  }
  if (
    r.AI_PROVIDER === 'doubao' &&
    r.DOUBAO_API_KEY === '' &&
    (r.DOUBAO_APP_ID === '' || r.DOUBAO_ACCESS_KEY === '')
  ) {
    throw new ConfigError(
      'DOUBAO_API_KEY',
      'is empty',
      'DOUBAO_API_KEY, or DOUBAO_APP_ID with DOUBAO_ACCESS_KEY (required when AI_PROVIDER=doubao)',
      undefined,
    );
  }
  if (r.AI_PROVIDER === 'openai' && r.OPENAI_API_KEY === '') {
    throw new ConfigError(
      'OPENAI_API_KEY',
      'is empty',
      'an OpenAI API key (required when AI_PROVIDER=openai)',
      undefined,
    );
  }

  return {
    drachtio: {
      host: r.DRACHTIO_HOST,
      port: r.DRACHTIO_PORT,
      secret: r.DRACHTIO_SECRET,
      reconnectMaxDelayMs: r.DRACHTIO_RECONNECT_MAX_DELAY_MS,
    },
    sip: {
      userAgent: r.SIP_USER_AGENT,
      allowedSources: r.SIP_ALLOWED_SOURCES.split(',')
        .map((v) => v.trim())
        .filter(Boolean),
      trunk: {
        uri: r.SIP_TRUNK_URI,
        username: r.SIP_TRUNK_USERNAME,
        password: r.SIP_TRUNK_PASSWORD,
        callerId: r.SIP_CALLER_ID,
        proxy: r.SIP_OUTBOUND_PROXY,
        ringTimeoutMs: r.OUTBOUND_RING_TIMEOUT_MS,
      },
    },
    rtp: {
      bindAddress: r.RTP_BIND_ADDRESS,
      publicAddress: r.RTP_PUBLIC_ADDRESS,
      portMin: r.RTP_PORT_MIN,
      portMax: r.RTP_PORT_MAX,
      codecPreference: r.CODEC_PREFERENCE,
      initialTimeoutMs: r.MEDIA_INITIAL_TIMEOUT_MS,
      timeoutMs: r.MEDIA_TIMEOUT_MS,
    },
    calls: {
      maxConcurrent: r.MAX_CONCURRENT_CALLS,
      busyRetryAfterS: r.BUSY_RETRY_AFTER_S,
      shutdownGraceMs: r.SHUTDOWN_GRACE_MS,
    },
    transfer: {
      targets: r.TRANSFER_TARGETS,
      mode: r.TRANSFER_MODE,
      timeoutMs: r.TRANSFER_TIMEOUT_MS,
      dtmfKey: r.DTMF_TRANSFER_KEY,
    },
    dtmfToAgent: r.DTMF_TO_AGENT,
    api: {
      port: r.HTTP_PORT,
      bindAddress: r.HTTP_BIND_ADDRESS,
      token: r.API_TOKEN,
      allowedDestinations: r.OUTBOUND_ALLOWED_DESTINATIONS.split(',')
        .map((d) => d.trim())
        .filter(Boolean),
      rateLimitPerMinute: r.API_RATE_LIMIT_PER_MINUTE,
    },
    webhooks: { url: r.WEBHOOK_URL, secret: r.WEBHOOK_SECRET },
    registration: {
      registrar: r.SIP_REGISTRAR,
      user: r.SIP_REGISTER_USER,
      password: r.SIP_REGISTER_PASSWORD,
      expiresS: r.SIP_REGISTER_EXPIRES,
    },
    transferKeywords: r.TRANSFER_KEYWORDS.split(',')
      .map((k) => k.trim().toLowerCase())
      .filter(Boolean),
    ai: {
      provider: r.AI_PROVIDER,
      fallbackProvider: r.AI_FALLBACK_PROVIDER === '' ? undefined : r.AI_FALLBACK_PROVIDER,
      contextHeaders: r.CALLER_CONTEXT_HEADERS.split(',')
        .map((h) => h.trim().toLowerCase())
        .filter(Boolean),
      toolsFile: r.TOOLS_FILE,
      connectTimeoutMs: r.PROVIDER_CONNECT_TIMEOUT_MS,
      instructions: r.AGENT_INSTRUCTIONS,
      greeting: r.AGENT_GREETING,
      echo: { delayMs: r.ECHO_DELAY_MS },
      openai: {
        apiKey: r.OPENAI_API_KEY,
        url: r.OPENAI_REALTIME_URL,
        model: r.OPENAI_REALTIME_MODEL,
        voice: r.OPENAI_VOICE,
        transcriptionModel: r.OPENAI_TRANSCRIPTION_MODEL,
      },
      doubao: {
        url: r.DOUBAO_REALTIME_URL,
        appId: r.DOUBAO_APP_ID,
        accessKey: r.DOUBAO_ACCESS_KEY,
        apiKey: r.DOUBAO_API_KEY,
        model: r.DOUBAO_MODEL,
        speaker: r.DOUBAO_SPEAKER,
        botName: r.DOUBAO_BOT_NAME,
        systemRole: r.DOUBAO_SYSTEM_ROLE,
        speakingStyle: r.DOUBAO_SPEAKING_STYLE,
        outputFormat: r.DOUBAO_OUTPUT_FORMAT,
        hangUpOnUserExit: r.DOUBAO_HANG_UP_ON_USER_EXIT,
      },
      gemini: {
        backend: r.GOOGLE_GENAI_USE_VERTEXAI ? 'vertex' : 'gemini-api',
        apiKey: r.GEMINI_API_KEY || r.GOOGLE_API_KEY,
        project: r.GOOGLE_CLOUD_PROJECT,
        location: r.GOOGLE_CLOUD_LOCATION,
        baseUrl:
          (r.GOOGLE_GENAI_USE_VERTEXAI ? r.GOOGLE_VERTEX_BASE_URL : r.GOOGLE_GEMINI_BASE_URL) || undefined,
        model: r.GEMINI_LIVE_MODEL,
        voice: r.GEMINI_VOICE,
      },
    },
    log: { level: r.LOG_LEVEL, pii: r.LOG_PII },
  };
}
