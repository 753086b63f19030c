/**
 * The error contract between the HTTP API and whatever implements {@link CallControl}.
 *
 * The call layer must not import src/api, so the API recognises errors by a `code` string (duck
 * typed), never by message text and never by class alone:
 *
 * | `code`                    | HTTP | when                                                           |
 * | ------------------------- | ---- | -------------------------------------------------------------- |
 * | `not_found`               | 404  | no call with that id (or it has already been forgotten)        |
 * | `invalid_state`           | 409  | the call cannot do that now (transfer an ended call, …)        |
 * | `destination_not_allowed` | 403  | the destination or transfer target is not allowed              |
 * | `busy`                    | 503  | call limit reached or draining; `Retry-After: retryAfterS`     |
 * | `invalid_argument`        | 400  | a well-formed value the call layer rejects (unknown provider…) |
 * | `not_configured`          | 501  | the feature is not set up (no outbound trunk, no transfers…)   |
 *
 * Any `Error` with one of these `code` values is mapped, so src/call can throw its own classes (or
 * plain errors with a `code` property). Optional properties read from the error:
 * - `retryAfterS` (number, `busy` only): seconds for the Retry-After header (default
 *   {@link DEFAULT_BUSY_RETRY_AFTER_S});
 * - `field` (string, `invalid_argument` only): the request field at fault, e.g. `provider`.
 * The error `message` is returned to the client, so it must not contain secrets.
 * core's `InvalidStateError` (thrown by the call state machine) also maps to 409.
 * Anything else is a 500 whose message is logged, not returned.
 */

export const CALL_CONTROL_ERROR_CODES = [
  'not_found',
  'invalid_state',
  'destination_not_allowed',
  'busy',
  'invalid_argument',
  'not_configured',
] as const;

export type CallControlErrorCode = (typeof CALL_CONTROL_ERROR_CODES)[number];

/** Retry-After for a `busy` error that does not say: long enough for a short call to end. */
export const DEFAULT_BUSY_RETRY_AFTER_S = 5;

/** A convenience base class for CallControl implementations; any Error with a known `code` works too. */
export class CallControlError extends Error {
  override readonly name: string = 'CallControlError';
  constructor(
    readonly code: CallControlErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class NotFoundError extends CallControlError {
  override readonly name = 'NotFoundError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('not_found', message, options);
  }
}

export class CallInvalidStateError extends CallControlError {
  override readonly name = 'CallInvalidStateError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('invalid_state', message, options);
  }
}

export class DestinationNotAllowedError extends CallControlError {
  override readonly name = 'DestinationNotAllowedError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('destination_not_allowed', message, options);
  }
}

export class BusyError extends CallControlError {
  override readonly name = 'BusyError';
  constructor(
    message: string,
    readonly retryAfterS: number = DEFAULT_BUSY_RETRY_AFTER_S,
    options?: { cause?: unknown },
  ) {
    super('busy', message, options);
  }
}

export class InvalidArgumentError extends CallControlError {
  override readonly name = 'InvalidArgumentError';
  constructor(
    readonly field: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('invalid_argument', message, options);
  }
}

/** What the API needs to know about an error thrown by CallControl. */
export interface RecognisedError {
  code: CallControlErrorCode;
  message: string;
  retryAfterS: number | undefined;
  field: string | undefined;
}

function isCode(value: unknown): value is CallControlErrorCode {
  return typeof value === 'string' && (CALL_CONTROL_ERROR_CODES as readonly string[]).includes(value);
}

/** Reads the contract above from any thrown value; undefined when it is not a call-control error. */
export function recogniseCallControlError(error: unknown): RecognisedError | undefined {
  if (!(error instanceof Error) || !('code' in error) || !isCode(error.code)) return undefined;
  const retryAfterS =
    'retryAfterS' in error &&
    typeof error.retryAfterS === 'number' &&
    Number.isFinite(error.retryAfterS) &&
    error.retryAfterS >= 0
      ? Math.ceil(error.retryAfterS)
      : undefined;
  const field = 'field' in error && typeof error.field === 'string' ? error.field : undefined;
  return { code: error.code, message: error.message, retryAfterS, field };
}

/** Thrown by the rate limiter's response builder; carries the status it was built for. */
export class RateLimitedError extends Error {
  override readonly name = 'RateLimitedError';
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
  }
}
