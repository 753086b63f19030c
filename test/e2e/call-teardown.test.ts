// How calls end when voxgate ends them: provider loss, media timeout, shutdown, call limit. The SIPp
// caller (uac-wait-bye) sends no RTP and waits for voxgate's BYE, which must carry a Reason header.
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describeE2E, startDrachtio, type DrachtioServer } from '../helpers/drachtio.js';
import { killAll } from '../helpers/processes.js';
import { freeEvenUdpPortRange } from '../helpers/ports.js';
import { byMsg, drachtioEnv, startVoxgate, type Voxgate } from '../helpers/voxgate.js';
import { runSipp, type SippResult } from '../helpers/sipp.js';
import { FakeOpenAIRealtime } from '../fakes/openai-realtime.js';

// Shaped like a real key (sk- prefix) so a leak would be obvious, built at runtime so no key-like literal is committed.
const API_KEY = ['sk', 'test-never-in-a-log-line-0123456789'].join('-');

function byeReason(result: SippResult): string | undefined {
  return /^Reason: (.*)$/m.exec(result.messages.slice(result.messages.indexOf('BYE sip:')))?.[1];
}

describeE2E('calls that voxgate ends', () => {
  let drachtio: DrachtioServer;
  let voxgate: Voxgate | undefined;
  let fake: FakeOpenAIRealtime | undefined;

  beforeAll(async () => {
    drachtio = await startDrachtio();
  });
  afterEach(async () => {
    await voxgate?.stop();
    voxgate = undefined;
    await fake?.stop();
    fake = undefined;
  });
  afterAll(async () => {
    await drachtio?.stop();
    await killAll();
  });

  async function start(env: Record<string, string>): Promise<Voxgate> {
    const rtpBase = await freeEvenUdpPortRange(4);
    voxgate = await startVoxgate({
      ...drachtioEnv(drachtio),
      RTP_PORT_MIN: String(rtpBase),
      RTP_PORT_MAX: String(rtpBase + 3),
      ...env,
    });
    return voxgate;
  }

  const waitForBye = (timeoutMs = 15_000): Promise<SippResult> =>
    runSipp({ scenario: 'uac-wait-bye', target: `127.0.0.1:${drachtio.sipPort}`, timeoutMs });
  const expect503 = (): Promise<SippResult> =>
    runSipp({ scenario: 'uac-expect-503', target: `127.0.0.1:${drachtio.sipPort}`, timeoutMs: 10_000 });

  it('hangs up with Reason cause 41 when the AI provider drops mid-call, and never logs the key or the caller number', async () => {
    fake = new FakeOpenAIRealtime({ replyAudio: Buffer.alloc(1600, 0xff) });
    await fake.start();
    const vg = await start({
      AI_PROVIDER: 'openai',
      OPENAI_API_KEY: API_KEY,
      OPENAI_REALTIME_URL: fake.url,
      AGENT_GREETING: '',
    });
    const caller = waitForBye();
    await vg.waitForLog(byMsg('call answered'), 10_000);
    const session = await fake.waitForSession();
    session.drop();
    const result = await caller;
    expect(result.code, result.errors).toBe(0);
    expect(byeReason(result)).toBe('Q.850;cause=41;text="AI provider failed"');
    const ended = await vg.waitForLog(byMsg('call ended'), 5000);
    expect(ended['cause']).toBe('provider-failed');
    const everything = JSON.stringify(vg.logs) + vg.otherLines.join('\n');
    expect(everything).not.toContain(API_KEY);
    expect(everything).not.toContain('15550100001');
  });

  it('hangs up with Reason cause 102 when no RTP arrives after answer', async () => {
    const vg = await start({ AI_PROVIDER: 'echo', MEDIA_INITIAL_TIMEOUT_MS: '1500' });
    const result = await waitForBye();
    expect(result.code, result.errors).toBe(0);
    expect(byeReason(result)).toBe('Q.850;cause=102;text="Media timeout"');
    const ended = await vg.waitForLog(byMsg('call ended'), 5000);
    expect(ended['cause']).toBe('media-timeout');
  });

  it('refuses calls beyond MAX_CONCURRENT_CALLS with 503 + Retry-After', async () => {
    const vg = await start({
      AI_PROVIDER: 'echo',
      MAX_CONCURRENT_CALLS: '1',
      MEDIA_INITIAL_TIMEOUT_MS: '4000',
    });
    const first = waitForBye();
    await vg.waitForLog(byMsg('call answered'), 10_000);
    const second = await expect503();
    expect(second.code, second.errors).toBe(0);
    expect(second.messages).toMatch(/^Retry-After: 30$/m);
    expect(vg.findLogs(byMsg('call refused'))[0]?.['why']).toBe('call limit reached');
    expect((await first).code).toBe(0);
  });

  it('on SIGTERM refuses new calls, hangs up active ones after the grace period, and exits 0', async () => {
    const vg = await start({ AI_PROVIDER: 'echo', SHUTDOWN_GRACE_MS: '2000', MEDIA_INITIAL_TIMEOUT_MS: '0' });
    const active = waitForBye();
    await vg.waitForLog(byMsg('call answered'), 10_000);
    vg.process.child.kill('SIGTERM');
    await vg.waitForLog(byMsg('shutting down: no new calls'), 5000);
    const refused = await expect503();
    expect(refused.code, refused.errors).toBe(0);
    const result = await active;
    expect(result.code, result.errors).toBe(0);
    expect(byeReason(result)).toBe('Q.850;cause=16;text="Service shutting down"');
    const exit = await vg.process.exited;
    expect(exit.code).toBe(0);
    expect(vg.findLogs(byMsg('shutdown complete'))).toHaveLength(1);
  });
});
