/** Why a call ended: one typed value, set once, carried to logs, the Reason header and (later) webhooks. */
export type TerminationCause =
  | 'caller-hangup'
  | 'callee-hangup'
  | 'caller-canceled'
  | 'callee-busy'
  | 'no-answer'
  | 'callee-declined'
  | 'callee-not-found'
  | 'trunk-auth-failed'
  | 'callee-unreachable'
  | 'outbound-failed'
  | 'signalling-lost'
  | 'rejected'
  | 'agent-hangup'
  | 'transferred'
  | 'provider-failed'
  | 'media-timeout'
  | 'negotiation-failed'
  | 'shutdown'
  | 'internal-error';

export interface Termination {
  cause: TerminationCause;
  /** Human-readable detail for logs. */
  detail: string;
  /** SIP status when the call was refused before answer. */
  sipStatus?: number;
}

/** Q.850 causes for the RFC 3326 Reason header on BYEs we send. */
const Q850: Readonly<Record<TerminationCause, number>> = {
  'caller-hangup': 16,
  'callee-hangup': 16,
  'caller-canceled': 16,
  'callee-busy': 17,
  'no-answer': 19,
  'callee-declined': 21,
  'callee-not-found': 1,
  'trunk-auth-failed': 21,
  'callee-unreachable': 34,
  'outbound-failed': 41,
  'signalling-lost': 41,
  rejected: 21,
  'agent-hangup': 16,
  transferred: 16,
  'provider-failed': 41, // temporary failure
  'media-timeout': 102, // recovery on timer expiry
  'negotiation-failed': 88, // incompatible destination
  shutdown: 16,
  'internal-error': 41,
};

const REASON_TEXT: Readonly<Record<TerminationCause, string>> = {
  'caller-hangup': 'Caller hung up',
  'callee-hangup': 'Callee hung up',
  'caller-canceled': 'Caller canceled',
  'callee-busy': 'Callee busy',
  'no-answer': 'No answer',
  'callee-declined': 'Callee declined',
  'callee-not-found': 'Callee not found',
  'trunk-auth-failed': 'Trunk authentication failed',
  'callee-unreachable': 'Callee unreachable',
  'outbound-failed': 'Outbound call failed',
  'signalling-lost': 'Signalling lost',
  rejected: 'Call rejected',
  'agent-hangup': 'Agent ended the call',
  transferred: 'Call transferred',
  'provider-failed': 'AI provider failed',
  'media-timeout': 'Media timeout',
  'negotiation-failed': 'Media negotiation failed',
  shutdown: 'Service shutting down',
  'internal-error': 'Internal error',
};

export function reasonHeader(cause: TerminationCause): string {
  return `Q.850;cause=${Q850[cause]};text="${REASON_TEXT[cause]}"`;
}
