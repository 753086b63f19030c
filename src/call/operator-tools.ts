import type { ToolDeclaration } from '../ai/realtime.js';

export interface OperatorTool extends ToolDeclaration {
  url: string;
  timeoutMs: number;
}

/** The largest tool response passed back to the model. */
const MAX_RESULT_BYTES = 16 * 1024;

/**
 * Operator-defined tools served by HTTP endpoints. The model's call becomes a POST of
 * `{tool, arguments, callId}`; the JSON answer goes back to the model. Failures and timeouts are
 * reported to the model as `{ok: false, error}`, never thrown at the call.
 */
export class OperatorTools {
  readonly #tools: ReadonlyMap<string, OperatorTool>;

  constructor(tools: readonly OperatorTool[]) {
    this.#tools = new Map(tools.map((t) => [t.name, t]));
  }

  declarations(): ToolDeclaration[] {
    return [...this.#tools.values()].map(({ name, description, parameters }) => ({
      name,
      description,
      parameters,
    }));
  }

  has(name: string): boolean {
    return this.#tools.has(name);
  }

  async invoke(name: string, args: unknown, callId: string): Promise<unknown> {
    const tool = this.#tools.get(name);
    if (!tool) return { ok: false, error: `unknown tool ${name}` };
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), tool.timeoutMs);
    try {
      const response = await fetch(tool.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tool: name, arguments: args ?? {}, callId }),
        signal: abort.signal,
      });
      const text = (await response.text()).slice(0, MAX_RESULT_BYTES);
      if (!response.ok) return { ok: false, error: `the ${name} service answered HTTP ${response.status}` };
      try {
        return JSON.parse(text) as unknown;
      } catch {
        return { ok: true, result: text };
      }
    } catch {
      return {
        ok: false,
        error: abort.signal.aborted
          ? `the ${name} service did not answer within ${tool.timeoutMs} ms`
          : `the ${name} service could not be reached`,
      };
    } finally {
      clearTimeout(timer);
    }
  }
}
