import type { Call } from '../call/call.js';
import type { CallManager } from '../call/call-manager.js';
import type { WebhookDispatcher } from './webhooks.js';

/**
 * Turns call milestones into signed webhook events. Listens on the call manager as an observer: it
 * never sits on the media path or delays teardown (dispatch() only queues).
 */
export class CallEventFeed {
  readonly #urls = new Map<string, string>();

  constructor(
    manager: CallManager,
    private readonly dispatcher: WebhookDispatcher,
  ) {
    manager.on('callStarted', (call) => this.#follow(call));
  }

  /** Events of `callId` go to `url` instead of WEBHOOK_URL. */
  routeCall(callId: string, url: string): void {
    this.#urls.set(callId, url);
  }

  #follow(call: Call): void {
    const url = (): string | undefined => this.#urls.get(call.id);
    const direction = call.direction;
    if (direction === 'inbound') {
      this.dispatcher.dispatch(
        { type: 'call.ringing', callId: call.id, data: { direction, ...call.parties } },
        url(),
      );
    }
    call.on('progress', (progress) => {
      switch (progress.type) {
        case 'ringing':
          this.dispatcher.dispatch(
            { type: 'call.ringing', callId: call.id, data: { direction, ...call.parties } },
            url(),
          );
          break;
        case 'answered':
          this.dispatcher.dispatch({ type: 'call.answered', callId: call.id, data: { direction } }, url());
          break;
        case 'transfer.started':
          this.dispatcher.dispatch(
            { type: 'call.transfer.started', callId: call.id, data: { target: progress.target } },
            url(),
          );
          break;
        case 'transfer.succeeded':
          this.dispatcher.dispatch(
            { type: 'call.transfer.succeeded', callId: call.id, data: { target: progress.target } },
            url(),
          );
          break;
        case 'transfer.failed':
          this.dispatcher.dispatch(
            {
              type: 'call.transfer.failed',
              callId: call.id,
              data: { target: progress.target, reason: progress.reason },
            },
            url(),
          );
          break;
      }
    });
    call.once('ended', (termination) => {
      const summary = call.summary();
      this.dispatcher.dispatch(
        {
          type: 'call.ended',
          callId: call.id,
          data: {
            reason: termination.cause,
            detail: termination.detail,
            sipStatus: termination.sipStatus,
            durationMs: summary.durationMs,
            transcript: summary.transcript,
          },
        },
        url(),
      );
      this.#urls.delete(call.id);
    });
  }
}
