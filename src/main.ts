#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { loadConfig } from './config/load.js';
import { ConfigError, type Config } from './config/config.js';
import { monotonicClock } from './core/clock.js';
import { redactPaths, type Logger } from './core/log.js';
import { MediaClock } from './media/media-clock.js';
import { PortPool } from './media/port-pool.js';
import type { RealtimeProvider } from './ai/realtime.js';
import { EchoProvider } from './ai/providers/echo.js';
import { OpenAIRealtimeProvider } from './ai/providers/openai/session.js';
import { GeminiLiveProvider } from './ai/providers/gemini/session.js';
import { DoubaoRealtimeProvider } from './ai/providers/doubao/session.js';
import { SipAgent } from './sip/sip-agent.js';
import { CallManager, type OutboundSetup } from './call/call-manager.js';
import { Transferrer } from './call/transfer.js';
import { toolDeclarations } from './call/tools.js';

/** The composition root: the only place that builds concrete implementations and reads the environment. */

function createLogger(config: Config): Logger {
  return pino({
    level: config.log.level,
    base: { service: 'voxgate' },
    redact: { paths: redactPaths(config.log.pii), censor: '[redacted]' },
  });
}

/** RTP_PUBLIC_ADDRESS, or the first non-internal IPv4 address (what a single-homed host wants). */
function resolvePublicAddress(config: Config, log: Logger): string {
  if (config.rtp.publicAddress !== '') return config.rtp.publicAddress;
  const candidates = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && a.family === 'IPv4' && !a.internal);
  const chosen = candidates[0]?.address ?? '127.0.0.1';
  log.warn({ address: chosen }, 'RTP_PUBLIC_ADDRESS not set; using this address in SDP (set it behind NAT)');
  return chosen;
}

function createProvider(config: Config): RealtimeProvider {
  switch (config.ai.provider) {
    case 'echo':
      return new EchoProvider(config.ai.echo.delayMs, monotonicClock);
    case 'openai':
      return new OpenAIRealtimeProvider({
        ...config.ai.openai,
        connectTimeoutMs: config.ai.connectTimeoutMs,
      });
    case 'gemini':
      return new GeminiLiveProvider({ ...config.ai.gemini, connectTimeoutMs: config.ai.connectTimeoutMs });
    case 'doubao':
      return new DoubaoRealtimeProvider({
        ...config.ai.doubao,
        connectTimeoutMs: config.ai.connectTimeoutMs,
      });
  }
}

export interface Voxgate {
  readonly sip: SipAgent;
  readonly calls: CallManager;
  /** Stop taking calls, drain, disconnect. */
  shutdown(): Promise<void>;
}

export function startVoxgate(config: Config, log: Logger): Voxgate {
  const publicAddress = resolvePublicAddress(config, log);
  const mediaClock = new MediaClock(monotonicClock);
  const ports = new PortPool({
    bindAddress: config.rtp.bindAddress,
    min: config.rtp.portMin,
    max: config.rtp.portMax,
  });
  const provider = createProvider(config);
  const sip = new SipAgent(
    { ...config.drachtio, userAgent: config.sip.userAgent },
    log.child({ component: 'sip' }),
  );
  const outbound: OutboundSetup | undefined =
    config.sip.trunk.uri === ''
      ? undefined
      : { trunk: config.sip.trunk, placeCall: (options) => sip.placeCall(options) };
  const transferrer =
    config.transfer.targets.size === 0
      ? undefined
      : new Transferrer(
          {
            mode: config.transfer.mode,
            targets: config.transfer.targets,
            timeoutMs: config.transfer.timeoutMs,
          },
          { ports, mediaClock, clock: monotonicClock, publicAddress, userAgent: config.sip.userAgent },
          outbound,
        );
  const calls = new CallManager(
    {
      maxConcurrent: config.calls.maxConcurrent,
      busyRetryAfterS: config.calls.busyRetryAfterS,
      mediaTimeouts: { initialMs: config.rtp.initialTimeoutMs, steadyMs: config.rtp.timeoutMs },
    },
    {
      ports,
      mediaClock,
      clock: monotonicClock,
      provider,
      publicAddress,
      tools: toolDeclarations(transferrer?.targetNames ?? []),
      transferrer,
      dtmf: {
        transferKey: config.transfer.dtmfKey,
        toAgent: config.dtmfToAgent,
        transferKeywords: config.transferKeywords,
      },
      codecPreference: config.rtp.codecPreference,
      userAgent: config.sip.userAgent,
      instructions: config.ai.instructions,
      greeting: config.ai.greeting,
      connectTimeoutMs: config.ai.connectTimeoutMs,
      busyRetryAfterS: config.calls.busyRetryAfterS,
    },
    monotonicClock,
    log,
    outbound,
  );
  sip.on('invite', (invite) => calls.handleInvite(invite));
  log.info(
    {
      provider: provider.name,
      drachtio: `${config.drachtio.host}:${config.drachtio.port}`,
      rtp: {
        publicAddress,
        range: `${config.rtp.portMin}-${config.rtp.portMax}`,
        capacity: ports.capacity,
        codecs: config.rtp.codecPreference,
      },
      maxConcurrentCalls: config.calls.maxConcurrent,
    },
    'voxgate starting',
  );
  sip.connect();

  let shuttingDown: Promise<void> | undefined;
  return {
    sip,
    calls,
    shutdown: () =>
      (shuttingDown ??= (async () => {
        log.info(
          { active: calls.activeCount, graceMs: config.calls.shutdownGraceMs },
          'shutting down: no new calls',
        );
        await calls.drain(config.calls.shutdownGraceMs);
        sip.close();
        log.info('shutdown complete');
      })()),
  };
}

function main(): void {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  const log = createLogger(config);
  const app = startVoxgate(config, log);

  const onSignal = (signal: NodeJS.Signals): void => {
    if (app.calls.draining) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    log.info({ signal }, 'signal received');
    app.shutdown().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled promise rejection'));
  process.on('uncaughtException', (error) => {
    log.fatal({ err: error }, 'uncaught exception; exiting');
    process.exit(1);
  });
}

// Run only when executed directly (tests import startVoxgate); realpath so npm's bin symlink counts.
const entry = process.argv[1];
if (entry !== undefined && realpathSync(entry) === fileURLToPath(import.meta.url)) main();
