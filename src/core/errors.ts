/** Errors are classes checked with instanceof or `code`, never by message text (STYLE.md habit 4). */

export class InvalidStateError extends Error {
  override readonly name = 'InvalidStateError';
}

/** The provider could not be reached, refused us, or failed mid-call. */
export class ProviderError extends Error {
  override readonly name = 'ProviderError';
  constructor(
    message: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** No free port in the configured RTP range. */
export class PortsExhaustedError extends Error {
  override readonly name = 'PortsExhaustedError';
}

export { TimeoutError } from './events.js';

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
