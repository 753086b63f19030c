import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from './config.js';

/** Names the built-in tools use; an operator tool may not shadow them. */
const RESERVED = new Set(['transfer_call', 'end_call', 'send_dtmf']);
const DEFAULT_TOOL_TIMEOUT_MS = 5000;

const toolSchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'must be 1-64 letters, digits, _ or -' })
      .refine((n) => !RESERVED.has(n), { error: 'is a built-in tool name' }),
    description: z.string().min(1).max(1024),
    parameters: z.looseObject({ type: z.literal('object') }),
    url: z.string().refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), {
      error: 'is not an http(s) URL',
    }),
    timeoutMs: z.number().int().min(100).max(30_000).default(DEFAULT_TOOL_TIMEOUT_MS),
  })
  .strict();

export type OperatorToolConfig = z.output<typeof toolSchema>;

/** Reads and validates TOOLS_FILE; a problem stops startup with the tool and field named. */
export function loadOperatorTools(path: string): OperatorToolConfig[] {
  if (path === '') return [];
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(
      'TOOLS_FILE',
      `cannot be read as JSON (${error instanceof Error ? error.message : String(error)})`,
      'a JSON array of tools',
      JSON.stringify(path),
    );
  }
  const result = z.array(toolSchema).safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ConfigError(
      'TOOLS_FILE',
      `${issue.path.join('.') || 'top level'} ${issue.message}`,
      'tools of {name, description, parameters: {type: "object", …}, url, timeoutMs?}',
      JSON.stringify(path),
    );
  }
  const names = new Set<string>();
  for (const tool of result.data) {
    if (names.has(tool.name))
      throw new ConfigError(
        'TOOLS_FILE',
        `names ${tool.name} twice`,
        'unique tool names',
        JSON.stringify(path),
      );
    names.add(tool.name);
  }
  return result.data;
}
