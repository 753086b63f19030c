import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  WEBHOOK_SIGNATURE_TOLERANCE_S,
  WebhookDispatcher,
  verifyWebhookSignature,
  type WebhookDispatcherOptions,
  type WebhookEvent,
  type WebhookTimers,
} from '../../../src/api/webhooks.js';

const SECRET = 'whsec-test-secret';
/** The part of the delivered envelope these tests read. */
const Envelope = z.object({ id: z.string(), callId: z.string() });
const log = pino({ level: 'silent' });
const WAIT = { timeout: 5_000, interval: 10 };

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A webhook receiver on loopback; `respond` decides each answer (may hold the response). */
class Receiver {
  readonly received: Received[] = [];
  respond: (res: ServerResponse, index: number) => void = (res) => res.writeHead(200).end();
  readonly #server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      this.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      this.respond(res, this.received.length - 1);
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('receiver is not on TCP');
    return `http://127.0.0.1:${address.port}/hooks`;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

const ended: WebhookEvent = {
  type: 'call.ended',
  callId: 'call-1',
  data: {
    reason: 'caller-hangup',
    durationMs: 4200,
    transcript: [
      { role: 'agent', text: 'Hello' },
      { role: 'caller', text: 'Bye' },
    ],
  },
};

let receiver: Receiver;
let url: string;
let dispatcher: WebhookDispatcher | undefined;

function makeDispatcher(options: Partial<WebhookDispatcherOptions> = {}): WebhookDispatcher {
  dispatcher = new WebhookDispatcher({
    secret: SECRET,
    defaultUrl: url,
    logger: log,
    baseDelayMs: 5,
    maxDelayMs: 20,
    ...options,
  });
  return dispatcher;
}

/** Real timers that remember which are still pending (set, neither fired nor cleared). */
class CountingTimers implements WebhookTimers {
  readonly pending = new Set<NodeJS.Timeout>();
  setTimeout = (callback: () => void, ms: number): NodeJS.Timeout => {
    const timer = setTimeout(() => {
      this.pending.delete(timer);
      callback();
    }, ms);
    this.pending.add(timer);
    return timer;
  };
  clearTimeout = (timer: NodeJS.Timeout): void => {
    this.pending.delete(timer);
    clearTimeout(timer);
  };
}

beforeEach(async () => {
  receiver = new Receiver();
  url = await receiver.start();
});

afterEach(async () => {
  await dispatcher?.close(0);
  dispatcher = undefined;
  await receiver.stop();
});

describe('WebhookDispatcher delivery', () => {
  it('POSTs a signed JSON event that verifies with the shared secret', async () => {
    const d = makeDispatcher();
    d.dispatch(ended);
    await vi.waitFor(() => expect(d.stats().delivered).toBe(1), WAIT);
    const [request] = receiver.received;
    expect(request?.headers['content-type']).toBe('application/json');
    const body: unknown = JSON.parse(request!.body);
    expect(body).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/) as unknown,
      type: 'call.ended',
      callId: 'call-1',
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown,
      data: ended.data,
    });
    const timestamp = String(request!.headers['x-voxgate-timestamp']);
    const signature = String(request!.headers['x-voxgate-signature']);
    expect(signature).toMatch(/^v1=[0-9a-f]{64}$/);
    expect(
      verifyWebhookSignature(SECRET, timestamp, request!.body, signature, WEBHOOK_SIGNATURE_TOLERANCE_S),
    ).toBe(true);
    expect(verifyWebhookSignature('other-secret', timestamp, request!.body, signature, 300)).toBe(false);
    expect(verifyWebhookSignature(SECRET, timestamp, `${request!.body} `, signature, 300)).toBe(false);
  });

  it('sends to the per-call URL instead of the default one, and nowhere without a URL', async () => {
    const other = new Receiver();
    const otherUrl = await other.start();
    try {
      const d = makeDispatcher();
      d.dispatch(ended, otherUrl);
      await vi.waitFor(() => expect(other.received).toHaveLength(1), WAIT);
      expect(receiver.received).toHaveLength(0);
      const noDefault = new WebhookDispatcher({ secret: SECRET, logger: log });
      noDefault.dispatch(ended);
      expect(noDefault.stats()).toMatchObject({ queued: 0, inFlight: 0, dropped: 0 });
      await noDefault.close(0);
    } finally {
      await other.stop();
    }
  });

  it('retries a 500 and succeeds, re-sending the same event id with a fresh signature', async () => {
    receiver.respond = (res, i) => res.writeHead(i < 2 ? 500 : 204).end();
    const d = makeDispatcher();
    d.dispatch(ended);
    await vi.waitFor(() => expect(d.stats().delivered).toBe(1), WAIT);
    expect(receiver.received).toHaveLength(3);
    const ids = receiver.received.map((r) => Envelope.parse(JSON.parse(r.body)).id);
    expect(new Set(ids).size).toBe(1);
    for (const r of receiver.received) {
      const ok = verifyWebhookSignature(
        SECRET,
        String(r.headers['x-voxgate-timestamp']),
        r.body,
        String(r.headers['x-voxgate-signature']),
        300,
      );
      expect(ok).toBe(true);
    }
    expect(d.stats()).toMatchObject({ delivered: 1, failed: 0 });
  });

  it('retries 429 (honouring a short Retry-After)', async () => {
    receiver.respond = (res, i) =>
      i === 0 ? res.writeHead(429, { 'retry-after': '0' }).end() : res.writeHead(200).end();
    const d = makeDispatcher();
    d.dispatch(ended);
    await vi.waitFor(() => expect(d.stats().delivered).toBe(1), WAIT);
    expect(receiver.received).toHaveLength(2);
  });

  it('does not retry a 400', async () => {
    receiver.respond = (res) => res.writeHead(400).end();
    const d = makeDispatcher();
    d.dispatch(ended);
    await vi.waitFor(() => expect(d.stats().failed).toBe(1), WAIT);
    await new Promise((r) => setTimeout(r, 100)); // a retry would have come within the 20 ms cap
    expect(receiver.received).toHaveLength(1);
  });

  it('gives up after maxAttempts', async () => {
    receiver.respond = (res) => res.writeHead(503).end();
    const d = makeDispatcher({ maxAttempts: 3 });
    d.dispatch(ended);
    await vi.waitFor(() => expect(d.stats().failed).toBe(1), WAIT);
    await new Promise((r) => setTimeout(r, 100));
    expect(receiver.received).toHaveLength(3);
    expect(d.stats()).toMatchObject({ delivered: 0, failed: 1, inFlight: 0, queued: 0 });
  });

  it('bounds the queue and counts what it drops', async () => {
    const held: ServerResponse[] = [];
    receiver.respond = (res) => held.push(res);
    const d = makeDispatcher({ concurrency: 1, maxQueue: 2 });
    for (let i = 0; i < 5; i++) d.dispatch({ ...ended, callId: `call-${i}` });
    expect(d.stats()).toMatchObject({ inFlight: 1, queued: 2, dropped: 2 });
    await vi.waitFor(() => expect(held).toHaveLength(1), WAIT);
    receiver.respond = (res) => res.writeHead(200).end();
    held[0]!.writeHead(200).end();
    await vi.waitFor(() => expect(d.stats().delivered).toBe(3), WAIT);
    const delivered = receiver.received.map((r) => Envelope.parse(JSON.parse(r.body)).callId);
    expect(delivered).toEqual(['call-0', 'call-1', 'call-2']);
  });

  it('close() drains what it can, then abandons retries and leaves no timers behind', async () => {
    receiver.respond = (res) => res.writeHead(500).end();
    const timers = new CountingTimers();
    const d = makeDispatcher({ baseDelayMs: 60_000, maxDelayMs: 60_000, timers });
    d.dispatch(ended);
    await vi.waitFor(() => expect(receiver.received).toHaveLength(1), WAIT);
    await vi.waitFor(() => expect(timers.pending.size).toBe(1), WAIT); // the 30-60 s back-off wait
    const started = Date.now();
    await d.close(50);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(timers.pending.size).toBe(0);
    expect(d.stats()).toMatchObject({ inFlight: 0, queued: 0, dropped: 1, delivered: 0 });
  });

  it('close() aborts a request still in flight at its deadline and clears its timeout', async () => {
    receiver.respond = () => {}; // never answers
    const timers = new CountingTimers();
    const d = makeDispatcher({ timers, requestTimeoutMs: 60_000 });
    d.dispatch(ended);
    await vi.waitFor(() => expect(receiver.received).toHaveLength(1), WAIT);
    expect(timers.pending.size).toBe(1); // the request timeout
    await d.close(50);
    expect(timers.pending.size).toBe(0);
    expect(d.stats()).toMatchObject({ inFlight: 0, dropped: 1 });
  });

  it('times out a receiver that never answers, and retries', async () => {
    receiver.respond = (res, i) => (i === 0 ? undefined : res.writeHead(200).end());
    const d = makeDispatcher({ requestTimeoutMs: 100 });
    d.dispatch(ended);
    await vi.waitFor(() => expect(d.stats().delivered).toBe(1), WAIT);
    expect(receiver.received).toHaveLength(2);
  });

  it('close() waits for an in-flight delivery that finishes in time', async () => {
    receiver.respond = (res) => setTimeout(() => res.writeHead(200).end(), 50);
    const d = makeDispatcher();
    d.dispatch(ended);
    await d.close(2_000);
    expect(d.stats()).toMatchObject({ delivered: 1, dropped: 0 });
    d.dispatch(ended); // after close: dropped, not sent, no throw
    expect(d.stats().dropped).toBe(1);
  });

  it('dispatch() never throws: unreachable URL, bad URL, unserialisable data', async () => {
    const closed = new Receiver();
    const closedUrl = await closed.start();
    await closed.stop(); // nothing listens on that loopback port any more
    const d = makeDispatcher({ maxAttempts: 2, requestTimeoutMs: 1_000 });
    const bad = {
      type: 'call.answered',
      callId: 'x',
      data: { direction: 'inbound', n: 1n },
    } as unknown as WebhookEvent;
    expect(() => d.dispatch(ended, closedUrl)).not.toThrow();
    expect(() => d.dispatch(ended, 'ftp://example.com/')).not.toThrow();
    expect(() => d.dispatch(bad)).not.toThrow();
    expect(() => d.dispatch(null as unknown as WebhookEvent)).not.toThrow();
    expect(d.stats().dropped).toBe(3);
    await vi.waitFor(() => expect(d.stats().failed).toBe(1), WAIT);
  });

  it('refuses to be built without a secret or with a non-http default URL', () => {
    expect(() => new WebhookDispatcher({ secret: '', logger: log })).toThrow(RangeError);
    expect(
      () => new WebhookDispatcher({ secret: SECRET, defaultUrl: 'file:///etc/passwd', logger: log }),
    ).toThrow(/http/);
  });
});
