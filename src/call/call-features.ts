import type { RealtimeSession } from '../ai/realtime.js';
import type { MediaSession } from '../media/media-session.js';
import { parseDtmfInfo } from '../sip/dtmf-info.js';
import type { SipDialog } from '../sip/sip-dialog.js';
import type { Call } from './call.js';
import { ToolRouter } from './tool-router.js';
import type { OperatorTools } from './operator-tools.js';
import { hangUpAfterPlayback } from './hang-up.js';
import type { Transferrer } from './transfer.js';

export interface DtmfPolicy {
  /** A digit that transfers the caller to the default target ('' = none). */
  transferKey: string;
  /** Tell the agent about other digits so it can act on them. */
  toAgent: boolean;
  /** Caller phrases (lower case) that ask for a human, used when the provider has no tools. */
  transferKeywords: readonly string[];
}

/**
 * What every answered call gets on top of audio: tool calls; keypad digits from RFC 4733 or SIP INFO
 * (the same digit event either way) routed to a transfer or to the agent; and, for providers without
 * function calling, the documented fallbacks (keyword transfer, the model's end-of-call signal).
 */
export function wireCallFeatures(
  call: Call,
  session: RealtimeSession,
  media: MediaSession,
  dialog: SipDialog,
  transferrer: Transferrer | undefined,
  dtmf: DtmfPolicy,
  operatorTools?: OperatorTools,
): void {
  new ToolRouter(call, session, transferrer, operatorTools);
  const onDigit = (digit: string, source: 'rfc4733' | 'info'): void => {
    call.log.info({ source, pii: { digit } }, 'dtmf digit');
    if (call.state !== 'active') return;
    if (digit === dtmf.transferKey && transferrer) {
      void transferrer
        .transfer(call)
        .catch((error: unknown) => call.log.warn({ err: error }, 'keypad transfer refused'));
    } else if (dtmf.toAgent) {
      session.respond(
        `The caller pressed ${digit} on the phone keypad. Act on it as part of the conversation.`,
      );
    }
  };
  media.on('digit', ({ digit }) => onDigit(digit, 'rfc4733'));
  // The model says the caller wants to leave (providers without an end_call tool, e.g. Doubao).
  session.on('endRequested', (reason) => void hangUpAfterPlayback(call, `agent: ${reason}`));
  // Providers without function calling cannot call transfer_call: listen for the caller asking.
  if (!session.capabilities.toolCalls && transferrer && dtmf.transferKeywords.length > 0) {
    session.on('transcript', ({ role, text }) => {
      if (role !== 'caller' || call.state !== 'active') return;
      const said = text.toLowerCase();
      if (!dtmf.transferKeywords.some((k) => said.includes(k))) return;
      call.log.info('caller asked for a human; transferring');
      void transferrer
        .transfer(call)
        .catch((error: unknown) => call.log.warn({ err: error }, 'keyword transfer refused'));
    });
  }
  dialog.on('info', ({ contentType, body }) => {
    const parsed = parseDtmfInfo(contentType, body);
    if (parsed) onDigit(parsed.digit, 'info');
  });
}
