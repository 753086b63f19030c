import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OperatorTools } from '../../../src/call/operator-tools.js';
import { loadOperatorTools } from '../../../src/config/tools-file.js';
import { ConfigError } from '../../../src/config/config.js';

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

async function serve(
  handler: (body: string, respond: (status: number, text: string) => void) => void,
): Promise<string> {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => handler(body, (status, text) => res.writeHead(status).end(text)));
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/tool`;
}

const tool = (url: string, timeoutMs = 1000) => ({
  name: 'lookup_order',
  description: 'Look up an order',
  parameters: { type: 'object', properties: { order: { type: 'string' } } },
  url,
  timeoutMs,
});

describe('operator HTTP tools', () => {
  it('POSTs {tool, arguments, callId} and hands the JSON answer back to the model', async () => {
    let received: unknown;
    const url = await serve((body, respond) => {
      received = JSON.parse(body);
      respond(200, JSON.stringify({ status: 'shipped' }));
    });
    const tools = new OperatorTools([tool(url)]);
    expect(await tools.invoke('lookup_order', { order: 'A1' }, 'call-1')).toEqual({ status: 'shipped' });
    expect(received).toEqual({ tool: 'lookup_order', arguments: { order: 'A1' }, callId: 'call-1' });
    expect(tools.declarations()).toEqual([
      { name: 'lookup_order', description: 'Look up an order', parameters: tool(url).parameters },
    ]);
  });

  it('reports HTTP errors, timeouts and unreachable services to the model instead of throwing', async () => {
    const failing = await serve((_b, respond) => respond(500, 'boom'));
    expect(await new OperatorTools([tool(failing)]).invoke('lookup_order', {}, 'c')).toEqual({
      ok: false,
      error: 'the lookup_order service answered HTTP 500',
    });
    await new Promise<void>((r) => server!.close(() => r()));
    const slow = await serve(() => undefined); // never answers
    const timedOut = (await new OperatorTools([tool(slow, 150)]).invoke('lookup_order', {}, 'c')) as {
      error: string;
    };
    expect(timedOut.error).toMatch(/did not answer within 150 ms/);
    const closedPort = 'http://127.0.0.1:9/tool';
    expect(
      ((await new OperatorTools([tool(closedPort)]).invoke('lookup_order', {}, 'c')) as { ok: boolean }).ok,
    ).toBe(false);
  });
});

describe('TOOLS_FILE validation', () => {
  const file = (content: string): string => {
    const p = path.join(mkdtempSync(path.join(tmpdir(), 'vx-tools-')), 'tools.json');
    writeFileSync(p, content);
    return p;
  };

  it('loads valid tools with a default timeout', () => {
    const tools = loadOperatorTools(
      file(JSON.stringify([{ ...tool('https://example.invalid/t'), timeoutMs: undefined }])),
    );
    expect(tools[0]?.timeoutMs).toBe(5000);
  });

  it('names the tool field that is wrong, and refuses built-in names and duplicates', () => {
    const bad = (content: unknown): ConfigError => {
      try {
        loadOperatorTools(file(JSON.stringify(content)));
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return error as ConfigError;
      }
      throw new Error('expected a ConfigError');
    };
    expect(bad([{ ...tool('ftp://x'), timeoutMs: 100 }]).message).toMatch(/0\.url is not an http\(s\) URL/);
    expect(bad([{ ...tool('https://x.invalid'), name: 'end_call' }]).message).toMatch(/built-in/);
    expect(bad([tool('https://x.invalid'), tool('https://x.invalid')]).message).toMatch(/twice/);
    expect(() => loadOperatorTools(file('not json'))).toThrow(ConfigError);
  });
});
