import { z } from 'zod';
import type { ToolDeclaration } from '../ai/realtime.js';

/**
 * The tools every provider with function calling gets, declared once. The model picks transfer
 * destinations by name from the configured allow-list: it never dials a number of its own.
 */

export const TOOL_NAMES = { transfer: 'transfer_call', endCall: 'end_call', sendDtmf: 'send_dtmf' } as const;

export function toolDeclarations(transferTargets: readonly string[]): ToolDeclaration[] {
  const tools: ToolDeclaration[] = [
    {
      name: TOOL_NAMES.endCall,
      description:
        'Hang up the call after you have said goodbye. Use when the caller is done or asks to end the call.',
      parameters: {
        type: 'object',
        properties: { reason: { type: 'string', description: 'Why the call ends' } },
      },
    },
    {
      name: TOOL_NAMES.sendDtmf,
      description:
        'Press keys on the phone keypad, e.g. to navigate an automated menu (IVR) on an outbound call.',
      parameters: {
        type: 'object',
        properties: {
          digits: { type: 'string', pattern: '^[0-9*#A-D]{1,32}$', description: 'Keys to press, in order' },
        },
        required: ['digits'],
      },
    },
  ];
  if (transferTargets.length > 0) {
    tools.unshift({
      name: TOOL_NAMES.transfer,
      description:
        'Transfer the caller to a human. Tell the caller you are transferring them before you call this.',
      parameters: {
        type: 'object',
        properties: {
          destination: {
            type: 'string',
            enum: [...transferTargets],
            description: 'Who to transfer to; omit for the default',
          },
          reason: { type: 'string', description: 'Short reason, for the person taking the call' },
        },
      },
    });
  }
  return tools;
}

export const transferArgs = z
  .object({ destination: z.string().optional(), reason: z.string().max(500).optional() })
  .strict();
export const endCallArgs = z.object({ reason: z.string().max(500).optional() }).strict();
export const sendDtmfArgs = z.object({ digits: z.string().regex(/^[0-9*#A-D]{1,32}$/) }).strict();
