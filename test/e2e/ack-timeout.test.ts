// A caller that never ACKs our 200 OK: drachtio-server's ACK timer (64·T1 = 32 s, fixed in the server
// whatever <timers> says) tears the dialog down and sends BYE itself; voxgate must release the call,
// its RTP port and its provider session.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeE2E, startDrachtio, type DrachtioServer } from '../helpers/drachtio.js';
import { killAll } from '../helpers/processes.js';
import { freeEvenUdpPortRange, portIsFree } from '../helpers/ports.js';
import { byMsg, drachtioEnv, startVoxgate, type Voxgate } from '../helpers/voxgate.js';
import { runSipp } from '../helpers/sipp.js';
import { FakeOpenAIRealtime } from '../fakes/openai-realtime.js';

describeE2E('ACK timeout', () => {
  let drachtio: DrachtioServer;
  let voxgate: Voxgate;
  let fake: FakeOpenAIRealtime;
  let rtpBase: number;

  beforeAll(async () => {
    drachtio = await startDrachtio();
    fake = new FakeOpenAIRealtime({ replyAudio: Buffer.alloc(1600, 0xff) });
    await fake.start();
    rtpBase = await freeEvenUdpPortRange(2);
    voxgate = await startVoxgate({
      ...drachtioEnv(drachtio),
      AI_PROVIDER: 'openai',
      OPENAI_API_KEY: 'test-key',
      OPENAI_REALTIME_URL: fake.url,
      RTP_PORT_MIN: String(rtpBase),
      RTP_PORT_MAX: String(rtpBase + 1),
      MEDIA_INITIAL_TIMEOUT_MS: '0', // only the ACK timer may end this call
    });
  });
  afterAll(async () => {
    await voxgate?.stop();
    await fake?.stop();
    await drachtio?.stop();
    await killAll();
  });

  it(
    'releases the call, its port and its provider session when the ACK never comes',
    { timeout: 60_000 },
    async () => {
      await runSipp({ scenario: 'uac-no-ack', target: `127.0.0.1:${drachtio.sipPort}`, timeoutMs: 15_000 });
      const ended = await voxgate.waitForLog(byMsg('call ended'), 40_000);
      expect(ended['cause']).toBe('signalling-lost');
      expect(ended['detail']).toBe('ACK timeout');
      expect(await portIsFree(rtpBase)).toBe(true);
      await expect.poll(() => fake.sessions.every((s) => s.closed), { timeout: 3000 }).toBe(true);
      expect(fake.sessions).toHaveLength(1);
    },
  );
});
