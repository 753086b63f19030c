import type { Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

/**
 * Paths pino redacts. Secrets always; personal data (numbers, transcripts, provider payloads) lives
 * under `pii.*` and is redacted unless LOG_PII=true.
 */
export function redactPaths(logPii: boolean): string[] {
  const secrets = [
    'apiKey',
    '*.apiKey',
    'secret',
    '*.secret',
    'password',
    '*.password',
    'authorization',
    '*.authorization',
    'headers.authorization',
    '*.headers.authorization',
  ];
  return logPii ? secrets : [...secrets, 'pii', '*.pii'];
}
