import { isIP } from 'node:net';
import { z } from 'zod';

/** Each entry: the zod type plus a human description of the expected form (used in error lines). */
/** Decimal integers only: an empty value must not become 0 (which would silently disable a timeout). */
const int = (min: number, max: number) =>
  z
    .string()
    .trim()
    .min(1, { error: 'is empty' })
    .regex(/^-?\d+(\.\d+)?$/, { error: 'is not a number' })
    .regex(/^-?\d+$/, { error: 'is not an integer' })
    .transform(Number)
    .pipe(
      z
        .number()
        .min(min, { error: `is below ${min}` })
        .max(max, { error: `is above ${max}` }),
    );

const bool = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => ['true', 'false', '1', '0', 'yes', 'no'].includes(v), { error: 'is not a boolean' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const wsUrl = z
  .string()
  .trim()
  .refine((v) => URL.canParse(v) && /^wss?:$/.test(new URL(v).protocol), {
    error: 'is not a ws:// or wss:// URL',
  });

const codecList = z
  .string()
  .transform((v) =>
    v
      .split(',')
      .map((c) => c.trim().toUpperCase())
      .filter(Boolean),
  )
  .pipe(
    z
      .array(z.enum(['PCMU', 'PCMA'], { error: 'names a codec other than PCMU or PCMA' }))
      .min(1, { error: 'is empty' })
      .refine((l) => new Set(l).size === l.length, { error: 'repeats a codec' }),
  );

const address = z
  .string()
  .trim()
  .refine((v) => isIP(v) !== 0, { error: 'is not an IP address' });

const sipUriOrEmpty = z
  .string()
  .trim()
  .refine((v) => v === '' || /^sips?:[^\s]+$/i.test(v), { error: 'is not a sip: URI' });

const e164OrEmpty = z
  .string()
  .trim()
  .refine((v) => v === '' || /^\+[1-9]\d{6,14}$/.test(v), { error: 'is not an E.164 number' });

/** name=uri pairs, e.g. agent=sip:+15550100@trunk.example,sales=tel:+15550101 (first = default). */
const transferTargets = z
  .string()
  .trim()
  .transform((v, ctx) => {
    const targets = new Map<string, string>();
    for (const entry of v
      .split(',')
      .map((e) => e.trim())
      .filter(Boolean)) {
      const match = /^([A-Za-z0-9_-]{1,32})=((?:sips?|tel):\S+)$/.exec(entry);
      if (!match) {
        ctx.addIssue({ code: 'custom', message: `has a bad entry ${JSON.stringify(entry)}` });
        return z.NEVER;
      }
      if (targets.has(match[1]!)) {
        ctx.addIssue({ code: 'custom', message: `names ${match[1]} twice` });
        return z.NEVER;
      }
      targets.set(match[1]!, match[2]!);
    }
    return targets;
  });

/** An http(s) or ws(s) base URL for proxies and tests, or empty for the provider's own endpoint. */
const baseUrlOrEmpty = z
  .string()
  .trim()
  .refine((v) => v === '' || (URL.canParse(v) && /^(https?|wss?):$/.test(new URL(v).protocol)), {
    error: 'is not an http(s):// or ws(s):// URL',
  });

export const configFields = {
  DRACHTIO_HOST: { schema: z.string().trim().min(1, { error: 'is empty' }), expected: 'a host name or IP' },
  DRACHTIO_PORT: { schema: int(1, 65535), expected: 'a TCP port 1-65535' },
  DRACHTIO_SECRET: { schema: z.string().min(1, { error: 'is empty' }), expected: 'a non-empty string' },
  DRACHTIO_RECONNECT_MAX_DELAY_MS: { schema: int(100, 600_000), expected: 'milliseconds 100-600000' },
  SIP_USER_AGENT: { schema: z.string().trim().min(1, { error: 'is empty' }), expected: 'a non-empty string' },
  SIP_TRUNK_URI: { schema: sipUriOrEmpty, expected: 'a sip: URI such as sip:name.pstn.twilio.com, or empty' },
  SIP_TRUNK_USERNAME: { schema: z.string().trim(), expected: 'the trunk digest user name, or empty' },
  SIP_TRUNK_PASSWORD: { schema: z.string(), expected: 'the trunk digest password, or empty', secret: true },
  SIP_CALLER_ID: { schema: e164OrEmpty, expected: 'an E.164 number such as +15550100, or empty' },
  SIP_OUTBOUND_PROXY: { schema: sipUriOrEmpty, expected: 'a sip: URI, or empty' },
  OUTBOUND_RING_TIMEOUT_MS: { schema: int(1000, 300_000), expected: 'milliseconds 1000-300000' },
  RTP_BIND_ADDRESS: { schema: address, expected: 'an IPv4 or IPv6 address' },
  RTP_PUBLIC_ADDRESS: {
    schema: z.union([z.literal(''), address], { error: 'is not an IP address' }),
    expected: 'an IP address, or empty to auto-detect',
  },
  RTP_PORT_MIN: { schema: int(1024, 65534), expected: 'an even UDP port 1024-65534' },
  RTP_PORT_MAX: { schema: int(1025, 65535), expected: 'a UDP port 1025-65535 above RTP_PORT_MIN' },
  CODEC_PREFERENCE: { schema: codecList, expected: 'a comma list of PCMU, PCMA' },
  MEDIA_INITIAL_TIMEOUT_MS: { schema: int(0, 3_600_000), expected: 'milliseconds (0 disables)' },
  MEDIA_TIMEOUT_MS: { schema: int(0, 3_600_000), expected: 'milliseconds (0 disables)' },
  MAX_CONCURRENT_CALLS: { schema: int(1, 100_000), expected: 'an integer 1-100000' },
  BUSY_RETRY_AFTER_S: { schema: int(0, 86_400), expected: 'seconds 0-86400' },
  SHUTDOWN_GRACE_MS: { schema: int(0, 3_600_000), expected: 'milliseconds 0-3600000' },
  TRANSFER_TARGETS: {
    schema: transferTargets,
    expected: 'comma-separated name=uri pairs with sip:, sips: or tel: URIs, or empty',
  },
  TRANSFER_MODE: {
    schema: z.enum(['refer', 'bridge', 'warm'], { error: 'is not a transfer mode' }),
    expected: 'refer, bridge or warm',
  },
  TRANSFER_TIMEOUT_MS: { schema: int(1000, 300_000), expected: 'milliseconds 1000-300000' },
  DTMF_TRANSFER_KEY: {
    schema: z
      .string()
      .trim()
      .regex(/^[0-9*#A-D]?$/, { error: 'is not a single keypad key' }),
    expected: 'one of 0-9 * # A-D, or empty',
  },
  DTMF_TO_AGENT: { schema: bool, expected: 'true or false' },
  HTTP_PORT: { schema: int(1, 65535), expected: 'a TCP port 1-65535' },
  HTTP_BIND_ADDRESS: { schema: address, expected: 'an IP address (127.0.0.1 keeps the API local)' },
  API_TOKEN: {
    schema: z
      .string()
      .trim()
      .refine((v) => v === '' || v.length >= 16, { error: 'is shorter than 16 characters' }),
    expected: 'a bearer token of 16+ characters (required unless HTTP_BIND_ADDRESS is loopback)',
    secret: true,
  },
  OUTBOUND_ALLOWED_DESTINATIONS: {
    schema: z.string(),
    expected:
      'comma-separated E.164 prefixes (+1555) and SIP domains (sip:pbx.example.com); empty denies all',
  },
  API_RATE_LIMIT_PER_MINUTE: { schema: int(1, 100_000), expected: 'calls per minute per token, 1-100000' },
  WEBHOOK_URL: {
    schema: z
      .string()
      .trim()
      .refine((v) => v === '' || (URL.canParse(v) && /^https?:$/.test(new URL(v).protocol)), {
        error: 'is not an http(s) URL',
      }),
    expected: 'an http:// or https:// URL, or empty',
  },
  WEBHOOK_SECRET: {
    schema: z.string(),
    expected: 'the HMAC key webhook receivers verify with',
    secret: true,
  },
  SIP_REGISTRAR: {
    schema: sipUriOrEmpty,
    expected: 'sip:host[:port][;transport=udp|tcp], or empty for no registration',
  },
  SIP_REGISTER_USER: { schema: z.string().trim(), expected: 'the extension / user name' },
  SIP_REGISTER_PASSWORD: { schema: z.string(), expected: 'the extension password', secret: true },
  SIP_REGISTER_EXPIRES: { schema: int(30, 86_400), expected: 'seconds 30-86400' },
  AI_PROVIDER: {
    schema: z.enum(['echo', 'openai', 'gemini', 'doubao'], { error: 'is not a known provider' }),
    expected: 'one of echo, openai, gemini, doubao',
  },
  AI_FALLBACK_PROVIDER: {
    schema: z.enum(['', 'echo', 'openai', 'gemini', 'doubao'], { error: 'is not a known provider' }),
    expected: 'empty, or one of echo, openai, gemini, doubao (different from AI_PROVIDER)',
  },
  SIP_ALLOWED_SOURCES: {
    schema: z.string(),
    expected: 'comma-separated IPv4 addresses/CIDRs and the word twilio, or empty to accept any source',
  },
  CALLER_CONTEXT_HEADERS: { schema: z.string(), expected: 'comma-separated SIP header names (X-… headers)' },
  TOOLS_FILE: { schema: z.string().trim(), expected: 'a path to a JSON file of operator tools, or empty' },
  PROVIDER_CONNECT_TIMEOUT_MS: { schema: int(100, 60_000), expected: 'milliseconds 100-60000' },
  ECHO_DELAY_MS: { schema: int(0, 10_000), expected: 'milliseconds 0-10000' },
  OPENAI_API_KEY: { schema: z.string().trim(), expected: 'an OpenAI API key', secret: true },
  OPENAI_REALTIME_URL: { schema: wsUrl, expected: 'a ws:// or wss:// URL' },
  OPENAI_REALTIME_MODEL: {
    schema: z.string().trim().min(1, { error: 'is empty' }),
    expected: 'a model name',
  },
  OPENAI_VOICE: { schema: z.string().trim().min(1, { error: 'is empty' }), expected: 'a voice name' },
  OPENAI_TRANSCRIPTION_MODEL: { schema: z.string().trim(), expected: 'a model name, or empty for none' },
  GOOGLE_GENAI_USE_VERTEXAI: { schema: bool, expected: 'true (Vertex AI) or false (Gemini Developer API)' },
  GEMINI_API_KEY: { schema: z.string().trim(), expected: 'a Gemini API key', secret: true },
  GOOGLE_API_KEY: { schema: z.string().trim(), expected: 'a Google API key', secret: true },
  GOOGLE_CLOUD_PROJECT: { schema: z.string().trim(), expected: 'a Google Cloud project id' },
  GOOGLE_CLOUD_LOCATION: {
    schema: z.string().trim().min(1, { error: 'is empty' }),
    expected: 'a Vertex AI location such as us-central1',
  },
  GOOGLE_GEMINI_BASE_URL: {
    schema: baseUrlOrEmpty,
    expected: 'an http(s):// or ws(s):// base URL, or empty',
  },
  GOOGLE_VERTEX_BASE_URL: {
    schema: baseUrlOrEmpty,
    expected: 'an http(s):// or ws(s):// base URL, or empty',
  },
  GEMINI_LIVE_MODEL: {
    schema: z.string().trim().min(1, { error: 'is empty' }),
    expected: 'a Gemini Live model name',
  },
  GEMINI_VOICE: { schema: z.string().trim(), expected: 'a voice name, or empty for the default' },
  DOUBAO_REALTIME_URL: { schema: wsUrl, expected: 'a ws:// or wss:// URL' },
  DOUBAO_API_KEY: { schema: z.string().trim(), expected: 'a Volcengine console API key', secret: true },
  DOUBAO_APP_ID: { schema: z.string().trim(), expected: 'a Volcengine app id' },
  DOUBAO_ACCESS_KEY: { schema: z.string().trim(), expected: 'a Volcengine access key', secret: true },
  DOUBAO_MODEL: {
    schema: z.string().trim().min(1, { error: 'is empty' }),
    expected: 'a dialog model version such as 1.2.1.1',
  },
  DOUBAO_SPEAKER: { schema: z.string().trim(), expected: 'a speaker (voice) id, or empty' },
  DOUBAO_BOT_NAME: {
    schema: z.string().trim().max(20, { error: 'is longer than 20 characters' }),
    expected: 'a name of at most 20 characters',
  },
  DOUBAO_SYSTEM_ROLE: { schema: z.string(), expected: 'text' },
  DOUBAO_SPEAKING_STYLE: { schema: z.string(), expected: 'text' },
  DOUBAO_OUTPUT_FORMAT: {
    schema: z.enum(['pcm_s16le', 'pcm'], { error: 'is not an output format' }),
    expected: 'pcm_s16le or pcm',
  },
  DOUBAO_HANG_UP_ON_USER_EXIT: { schema: bool, expected: 'true or false' },
  TRANSFER_KEYWORDS: { schema: z.string(), expected: 'comma-separated words or phrases' },
  AGENT_INSTRUCTIONS: { schema: z.string(), expected: 'text' },
  AGENT_GREETING: { schema: z.string(), expected: 'text, or empty for no greeting' },
  LOG_LEVEL: {
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      error: 'is not a level',
    }),
    expected: 'one of fatal, error, warn, info, debug, trace, silent',
  },
  LOG_PII: { schema: bool, expected: 'true or false' },
} as const satisfies Record<string, { schema: z.ZodType; expected: string; secret?: boolean }>;

export type ConfigKey = keyof typeof configFields;
export const CONFIG_KEYS = Object.keys(configFields) as ConfigKey[];
export const SECRET_KEYS: readonly ConfigKey[] = CONFIG_KEYS.filter(
  (k) => (configFields[k] as { secret?: boolean }).secret === true,
).concat('DRACHTIO_SECRET');
