import type { Call } from './call.js';

/** After the agent decides to hang up, let its goodbye play out, but never longer than this. */
const GOODBYE_DRAIN_MAX_MS = 15_000;
const GOODBYE_POLL_MS = 100;
/** The goodbye may still be arriving from the provider when the decision comes. */
const GOODBYE_ARRIVAL_GRACE_MS = 500;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Ends the call as 'agent-hangup' once the queued agent audio has been played (bounded wait). */
export async function hangUpAfterPlayback(call: Call, detail: string): Promise<void> {
  const deadline = Date.now() + GOODBYE_DRAIN_MAX_MS;
  await sleep(GOODBYE_ARRIVAL_GRACE_MS);
  while (!call.isOver && Date.now() < deadline && (call.media?.outbound.queuedMs ?? 0) > 0)
    await sleep(GOODBYE_POLL_MS);
  await call.end({ cause: 'agent-hangup', detail });
}
