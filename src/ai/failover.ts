import { ProviderError } from '../core/errors.js';
import type { RealtimeProvider, RealtimeSession, SessionOptions } from './realtime.js';

/**
 * Tries the configured provider; if it cannot connect at call start (unreachable, refused, timed out),
 * the fallback answers instead. A caller who hung up meanwhile ('aborted') is not retried. The
 * session's `provider` field says which one served.
 */
export class FailoverProvider implements RealtimeProvider {
  readonly name: string;

  constructor(
    private readonly primary: RealtimeProvider,
    private readonly fallback: RealtimeProvider,
  ) {
    this.name = primary.name;
  }

  async connect(options: SessionOptions): Promise<RealtimeSession> {
    try {
      return await this.primary.connect(options);
    } catch (error) {
      if (error instanceof ProviderError && error.code === 'aborted') throw error;
      options.log.warn(
        {
          primary: this.primary.name,
          fallback: this.fallback.name,
          reason: error instanceof Error ? error.message : String(error),
        },
        'primary AI provider failed; trying the fallback',
      );
      return this.fallback.connect(options);
    }
  }
}
