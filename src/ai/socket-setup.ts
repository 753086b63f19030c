import type WebSocket from 'ws';
import { ProviderError, errorMessage } from '../core/errors.js';

/**
 * Watches a provider WebSocket while its session is being set up and reports every way that can fail
 * as a ProviderError with the codes all providers share: `http_<status>` (upgrade refused),
 * `unreachable`, and `closed` (or `setup_rejected` for close codes the provider says mean "bad setup").
 * Returns the function that stops watching.
 */
export function watchSocketSetup(
  ws: WebSocket,
  fail: (error: ProviderError) => void,
  rejectingCloseCodes: ReadonlySet<number> = new Set(),
): () => void {
  const onUnexpected = (_req: unknown, res: { statusCode?: number }): void =>
    fail(
      new ProviderError(
        `provider refused the connection: HTTP ${res.statusCode ?? '?'}`,
        `http_${res.statusCode ?? 0}`,
      ),
    );
  const onError = (error: Error): void =>
    fail(new ProviderError(`cannot reach provider: ${errorMessage(error)}`, 'unreachable', { cause: error }));
  const onClose = (code: number, reason: Buffer): void => {
    const text = reason.toString();
    fail(
      new ProviderError(
        `provider closed the connection during setup (${code}${text ? ` ${text}` : ''})`,
        rejectingCloseCodes.has(code) ? 'setup_rejected' : 'closed',
      ),
    );
  };
  ws.on('unexpected-response', onUnexpected);
  ws.on('error', onError);
  ws.on('close', onClose);
  return () => {
    ws.off('unexpected-response', onUnexpected);
    ws.off('error', onError);
    ws.off('close', onClose);
  };
}

export const connectAborted = (): ProviderError => new ProviderError('connect aborted', 'aborted');
