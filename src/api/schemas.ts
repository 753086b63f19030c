import { z } from 'zod';
import { CALL_VIEW_STATES, type CallView, type PlaceCallRequest, type Readiness } from './call-control.js';
import { DESTINATION_SYNTAX, parseDestination } from './destinations.js';
import { isValidWebhookUrl } from './webhooks.js';

/** Limits on request bodies: generous for real use, small enough that a body cannot exhaust memory. */
const MAX_INSTRUCTIONS_CHARS = 32_000;
const MAX_VARIABLES = 50;
const MAX_VARIABLE_VALUE_CHARS = 1_000;
const MAX_URL_CHARS = 2_048;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** zod's own wording for a missing field is "expected string, received undefined". */
const requiredString = () =>
  z.string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') });

const destination = requiredString()
  .superRefine((value, ctx) => {
    const parsed = parseDestination(value);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
  })
  .meta({ description: DESTINATION_SYNTAX, examples: ['+14155550100', 'sip:alice@pbx.example.com'] });

const name = (what: string) =>
  requiredString().regex(NAME, { error: `must be a ${what} name (letters, digits, _ . -; at most 64)` });

export const PlaceCallBody = z
  .strictObject({
    to: destination.describe(`Callee: ${DESTINATION_SYNTAX}; must match OUTBOUND_ALLOWED_DESTINATIONS`),
    from: destination.optional().describe(`Caller id: ${DESTINATION_SYNTAX}`),
    provider: name('provider').optional().describe('AI provider, e.g. openai'),
    instructions: z
      .string()
      .max(MAX_INSTRUCTIONS_CHARS)
      .optional()
      .describe('System instructions for the agent'),
    voice: name('voice').optional(),
    variables: z
      .record(
        z.string().regex(VARIABLE_NAME, { error: 'must be a variable name ([A-Za-z_][A-Za-z0-9_]*)' }),
        z.string().max(MAX_VARIABLE_VALUE_CHARS),
      )
      .refine((v) => Object.keys(v).length <= MAX_VARIABLES, {
        error: `has more than ${MAX_VARIABLES} entries`,
      })
      .optional()
      .describe('Values for {{name}} placeholders in the instructions'),
    transferTarget: name('transfer target').optional().describe('Name from the transfer allow-list'),
    webhookUrl: z
      .string()
      .max(MAX_URL_CHARS)
      .refine(isValidWebhookUrl, { error: 'must be an http:// or https:// URL without credentials' })
      .optional()
      .describe("Receives this call's events instead of WEBHOOK_URL"),
  })
  .meta({ id: 'PlaceCallRequest' });

export const TransferBody = z
  .strictObject({
    target: name('transfer target').describe('A name from the transfer allow-list (not a number)'),
  })
  .meta({ id: 'TransferRequest' });

export const CallIdParams = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, { error: 'is not a call id' }),
});

const transcriptEntry = z.object({ role: z.enum(['caller', 'agent']), text: z.string() });

export const CallViewSchema = z
  .object({
    id: z.string(),
    direction: z.enum(['inbound', 'outbound']),
    state: z.enum(CALL_VIEW_STATES),
    provider: z.string(),
    from: z.string().optional(),
    to: z.string().optional(),
    timestamps: z.object({
      created: z.string().describe('ISO 8601'),
      answered: z.string().optional(),
      ended: z.string().optional(),
    }),
    durationMs: z.number().int().nonnegative().describe('Answer to end (or now); 0 if never answered'),
    sip: z
      .object({
        callId: z.string().optional(),
        status: z.number().int().optional().describe('Final response to the INVITE'),
        reason: z.string().optional(),
      })
      .describe('SIP outcome'),
    termination: z
      .object({ cause: z.string(), detail: z.string(), sipStatus: z.number().int().optional() })
      .optional(),
    transcript: z.array(transcriptEntry).describe('Transcript so far'),
    media: z
      .object({
        rtp: z.object({
          packetsReceived: z.number(),
          bytesReceived: z.number(),
          packetsSent: z.number(),
          bytesSent: z.number(),
          malformed: z.number(),
          ignored: z.number(),
        }),
        outbound: z.object({
          framesSent: z.number(),
          audioFramesSent: z.number(),
          silenceFramesSent: z.number(),
          overflowBytes: z.number(),
          skippedFrames: z.number(),
        }),
        latchedTo: z.string().optional(),
      })
      .optional(),
    bridge: z.object({ firstAgentAudioMs: z.number().optional(), bargeIns: z.number() }).optional(),
  })
  .meta({ id: 'Call' });

export const CreatedCall = z
  .object({ id: z.string(), state: z.enum(CALL_VIEW_STATES) })
  .meta({ id: 'CreatedCall' });
export const CallList = z.object({ calls: z.array(CallViewSchema) });
export const TransferAccepted = z.object({ id: z.string(), target: z.string() });

export const ReadinessSchema = z
  .object({
    ready: z.boolean(),
    checks: z.record(z.string(), z.object({ ok: z.boolean(), detail: z.string().optional() })),
  })
  .meta({ id: 'Readiness' });

export const Health = z.object({ status: z.literal('ok') });

export const ErrorBody = z
  .object({
    error: z
      .string()
      .describe(
        'validation | unauthorized | not_found | invalid_state | destination_not_allowed | busy | rate_limited | …',
      ),
    message: z.string().optional(),
    details: z
      .array(z.object({ field: z.string(), reason: z.string() }))
      .optional()
      .describe('For error=validation: every problem, by field path'),
  })
  .meta({ id: 'Error' });
export type ErrorBody = z.infer<typeof ErrorBody>;

// ---- compile-time: the schemas and the port's interfaces describe the same data ----
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
type _ViewMatches = Assert<Same<z.output<typeof CallViewSchema>, CallView>>;
type _RequestMatches = Assert<Same<z.output<typeof PlaceCallBody>, PlaceCallRequest>>;
type _ReadinessMatches = Assert<Same<z.output<typeof ReadinessSchema>, Readiness>>;
