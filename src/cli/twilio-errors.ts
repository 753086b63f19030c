// Turning Twilio failures into one actionable line, and keeping secrets out of everything printed.

/** What a Twilio REST error carries, whichever SDK exception class produced it. */
export interface TwilioErrorInfo {
  status: number;
  code: number | undefined;
  message: string;
  moreInfo: string | undefined;
}

/**
 * Hints for the codes `twilio setup` can realistically meet. Codes from twilio.com/docs/api/errors:
 * 20003 Authenticate, 20404 Not found, 20429 Too many requests, 21217 / 21421 invalid phone number,
 * 21240 Credential List validation, 21247 Trunk dependencies, 21248 Trunk Domain already taken.
 */
export const TWILIO_ERROR_HINTS: Readonly<Record<number, string>> = {
  20003:
    'authentication failed: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (the auth token of that same account or subaccount)',
  20404:
    'a resource was not found: it may have been deleted meanwhile, or the credentials belong to another account; re-run to re-read the current state',
  20429: 'Twilio is rate-limiting this account: wait a minute and re-run',
  21217:
    'the phone number is not valid: use E.164 (+, country code, digits only) for a number this account owns',
  21421:
    'the phone number is not valid: use E.164 (+, country code, digits only) for a number this account owns',
  21240:
    'credential list rejected: a list with the same name may already exist, the username must be 1-32 characters, and the password needs 12+ characters with a digit and mixed case',
  21247: 'trunk domain constraint violated: review the termination domain (--domain)',
  21248:
    'the domain is used by another trunk or account, or reserved for up to 30 days after its trunk was deleted: choose another with --domain',
};

const GENERIC_HINT = 'see the Twilio page linked below, fix the cause and re-run (setup is idempotent)';
const SERVER_HINT = 'Twilio had a server-side problem: re-run in a few minutes (setup is idempotent)';
const UNEXPECTED_HINT = 'this looks like a bug in voxgate or the Twilio SDK; please report it with this line';
const NETWORK_HINT =
  'could not talk to Twilio: check network access to api.twilio.com and trunking.twilio.com (HTTP_PROXY if you need a proxy)';

/** Recognise the SDK's RestException (status, code, moreInfo) and TwilioServiceException (RFC 9457). */
export function twilioErrorInfo(err: unknown): TwilioErrorInfo | null {
  if (!(err instanceof Error) || !('status' in err) || typeof err.status !== 'number') return null;
  const code = 'code' in err && typeof err.code === 'number' ? err.code : undefined;
  let moreInfo: string | undefined;
  if ('moreInfo' in err && typeof err.moreInfo === 'string') moreInfo = err.moreInfo;
  else if ('type' in err && typeof err.type === 'string' && err.type.startsWith('http')) moreInfo = err.type;
  let message = err.message;
  if ('detail' in err && typeof err.detail === 'string' && err.detail !== '') message = err.detail;
  return { status: err.status, code, message, moreInfo };
}

export function twilioErrorHint(info: TwilioErrorInfo): string {
  if (info.code !== undefined) {
    const hint = TWILIO_ERROR_HINTS[info.code];
    if (hint !== undefined) return hint;
  }
  if (info.status === 401) return TWILIO_ERROR_HINTS[20003] ?? GENERIC_HINT;
  if (info.status >= 500) return SERVER_HINT;
  return GENERIC_HINT;
}

/**
 * One line: `Twilio error <code> (HTTP <status>) while <doing>: <message> — hint: <hint> (more: <url>)`.
 * Non-Twilio failures (network, programming errors) get a line of the same shape.
 */
export function formatTwilioError(err: unknown, doing: string): string {
  const info = twilioErrorInfo(err);
  if (info !== null) {
    const code = info.code !== undefined ? `Twilio error ${info.code}` : 'Twilio error';
    const more =
      info.moreInfo ??
      (info.code !== undefined ? `https://www.twilio.com/docs/errors/${info.code}` : undefined);
    const message = oneLine(info.message);
    return `${code} (HTTP ${info.status}) while ${doing}: ${message} — hint: ${twilioErrorHint(info)}${more !== undefined ? ` (more: ${more})` : ''}`;
  }
  const message = oneLine(err instanceof Error ? err.message : String(err));
  // Socket and HTTP-client failures carry a string code (ECONNREFUSED, ENOTFOUND, ETIMEDOUT, ERR_NETWORK…).
  if (err instanceof Error && 'code' in err && typeof err.code === 'string')
    return `error while ${doing}: ${message} [${err.code}] — hint: ${NETWORK_HINT}`;
  return `error while ${doing}: ${message} — hint: ${UNEXPECTED_HINT}`;
}

const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim();

/** Secrets shorter than this are not redacted (replacing "a" everywhere would only garble the output). */
const MIN_REDACTABLE_LENGTH = 4;

/** Replace every occurrence of each secret with `[redacted]`. */
export function redactSecrets(line: string, secrets: readonly string[]): string {
  let out = line;
  for (const secret of secrets) {
    if (secret.length >= MIN_REDACTABLE_LENGTH) out = out.split(secret).join('[redacted]');
  }
  return out;
}
