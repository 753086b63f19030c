import type { CallSummary } from '../call/call.js';
import type { CallManager } from '../call/call-manager.js';
import type { Transferrer } from '../call/transfer.js';
import { fillTemplate } from '../call/call-context.js';
import type { CallControl, CallView, PlaceCallRequest, Readiness } from './call-control.js';
import type { CallEventFeed } from './call-feed.js';
import { CallInvalidStateError, InvalidArgumentError, NotFoundError } from './errors.js';

export interface CallManagerControlDeps {
  manager: CallManager;
  transferrer: Transferrer | undefined;
  providerName: string;
  defaultInstructions: string;
  /** Present when webhooks are configured (a per-call webhookUrl needs it). */
  feed: CallEventFeed | undefined;
  readiness(): Readiness;
}

const iso = (ms: number | undefined): string | undefined =>
  ms === undefined ? undefined : new Date(ms).toISOString();

export function toCallView(s: CallSummary): CallView {
  return {
    id: s.id,
    direction: s.direction,
    state: s.state,
    provider: s.provider,
    from: s.parties.from,
    to: s.parties.to,
    timestamps: {
      created: iso(s.timestamps.created)!,
      answered: iso(s.timestamps.answered),
      ended: iso(s.timestamps.ended),
    },
    durationMs: s.durationMs,
    sip: {
      callId: s.sipCallId === '' ? undefined : s.sipCallId,
      status: s.termination?.sipStatus ?? (s.timestamps.answered !== undefined ? 200 : undefined),
    },
    termination: s.termination,
    transcript: s.transcript,
    media: s.media,
    bridge: s.bridge,
  };
}

/** The HTTP API's view of the call manager. */
export function createCallManagerControl(deps: CallManagerControlDeps): CallControl {
  const { manager } = deps;
  const callOf = (id: string) => {
    const call = manager.get(id);
    if (call) return call;
    if (manager.summaryOf(id)) throw new CallInvalidStateError(`call ${id} has ended`);
    throw new NotFoundError(`no call ${id}`);
  };
  return {
    placeCall(req: PlaceCallRequest): Promise<CallView> {
      if (req.provider !== undefined && req.provider !== deps.providerName) {
        throw new InvalidArgumentError(
          'provider',
          `only the configured provider (${deps.providerName}) is available`,
        );
      }
      if (req.webhookUrl !== undefined && !deps.feed) {
        throw new InvalidArgumentError('webhookUrl', 'webhooks are not configured (set WEBHOOK_SECRET)');
      }
      if (req.transferTarget !== undefined && !deps.transferrer?.targetNames.includes(req.transferTarget)) {
        throw new InvalidArgumentError('transferTarget', 'is not a name in TRANSFER_TARGETS');
      }
      const instructions = req.instructions ?? deps.defaultInstructions;
      const call = manager.placeCall({
        to: req.to,
        ...(req.from !== undefined ? { from: req.from } : {}),
        instructions: req.variables ? fillTemplate(instructions, req.variables) : instructions,
        ...(req.voice !== undefined ? { voice: req.voice } : {}),
        ...(req.transferTarget !== undefined ? { transferTarget: req.transferTarget } : {}),
      });
      if (req.webhookUrl !== undefined) deps.feed?.routeCall(call.id, req.webhookUrl);
      return Promise.resolve(toCallView(call.summary()));
    },
    listCalls: () => manager.history().map(toCallView),
    getCall: (id) => {
      const summary = manager.summaryOf(id);
      return summary ? toCallView(summary) : undefined;
    },
    async transfer(id, target) {
      const call = callOf(id);
      if (!deps.transferrer)
        throw new InvalidArgumentError('target', 'transfers are not configured (TRANSFER_TARGETS)');
      // Started here; the outcome arrives by webhook (call.transfer.succeeded / failed).
      const started = deps.transferrer.transfer(call, target);
      await Promise.race([started, new Promise((resolve) => setImmediate(resolve))]);
      started.catch(() => undefined);
    },
    async hangUp(id) {
      await callOf(id).end({ cause: 'agent-hangup', detail: 'hung up through the API' });
    },
    readiness: () => deps.readiness(),
  };
}
