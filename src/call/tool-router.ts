import { errorMessage } from '../core/errors.js';
import type { RealtimeSession, ToolCall } from '../ai/realtime.js';
import type { Call } from './call.js';
import { CallControlError } from './errors.js';
import { TOOL_NAMES, endCallArgs, sendDtmfArgs, transferArgs } from './tools.js';
import type { Transferrer } from './transfer.js';
import { hangUpAfterPlayback } from './hang-up.js';
import type { OperatorTools } from './operator-tools.js';

/**
 * Runs the model's tool calls for one call. Arguments are validated; every call gets a result back
 * (errors included), so the model always knows what happened and can tell the caller.
 */
export class ToolRouter {
  constructor(
    private readonly call: Call,
    private readonly session: RealtimeSession,
    private readonly transferrer: Transferrer | undefined,
    private readonly operatorTools: OperatorTools | undefined,
  ) {
    session.on('toolCall', (toolCall) => void this.#run(toolCall));
  }

  async #run(toolCall: ToolCall): Promise<void> {
    let output: unknown;
    try {
      output = await this.#dispatch(toolCall);
    } catch (error) {
      output = { ok: false, error: error instanceof CallControlError ? error.message : errorMessage(error) };
    }
    this.call.log.info({ tool: toolCall.name, ok: (output as { ok?: unknown }).ok }, 'tool call handled');
    if (!this.call.isOver) this.session.sendToolResult(toolCall.callId, output);
  }

  async #dispatch({ name, args }: ToolCall): Promise<unknown> {
    switch (name) {
      case TOOL_NAMES.transfer: {
        const parsed = transferArgs.safeParse(args ?? {});
        if (!parsed.success) return { ok: false, error: 'invalid arguments for transfer_call' };
        if (!this.transferrer) return { ok: false, error: 'transfers are not configured' };
        const result = await this.transferrer.transfer(
          this.call,
          parsed.data.destination,
          parsed.data.reason,
        );
        return result.ok
          ? { ok: true, status: 'transferred' }
          : {
              ok: false,
              error: `The transfer failed (${result.reason}). Tell the caller you could not reach someone and offer to keep helping.`,
            };
      }
      case TOOL_NAMES.endCall: {
        const parsed = endCallArgs.safeParse(args ?? {});
        if (!parsed.success) return { ok: false, error: 'invalid arguments for end_call' };
        void hangUpAfterPlayback(this.call, parsed.data.reason ?? 'agent ended the call');
        return { ok: true };
      }
      case TOOL_NAMES.sendDtmf: {
        const parsed = sendDtmfArgs.safeParse(args ?? {});
        if (!parsed.success) return { ok: false, error: 'digits must be 1-32 of 0-9 * # A-D' };
        const sent = this.call.media?.sendDigits(parsed.data.digits) ?? false;
        return sent ? { ok: true } : { ok: false, error: 'the other side does not accept keypad tones' };
      }
      default:
        if (this.operatorTools?.has(name)) return this.operatorTools.invoke(name, args, this.call.id);
        return { ok: false, error: `unknown tool ${name}` };
    }
  }
}
