#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { loadConfig, loadRawEnv } from './config/load.js';
import { runCli } from './cli/cli.js';
import { createTwilioClient } from './cli/twilio-api.js';
import { errorMessage } from './core/errors.js';
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
import { FailoverProvider } from './ai/failover.js';
import { SipAgent } from './sip/sip-agent.js';
import { CallManager, type OutboundSetup } from './call/call-manager.js';
import { Transferrer } from './call/transfer.js';
import { toolDeclarations } from './call/tools.js';
import { OperatorTools } from './call/operator-tools.js';
import { loadOperatorTools } from './config/tools-file.js';
import { Registration } from './sip/registration.js';
import { TWILIO_SIGNALLING_NETWORKS } from './sip/twilio.js';
import { ipv4InNetworks, parseIpv4Network } from './core/cidr.js';
import { createApiServer, startApiServer } from './api/server.js';
import { assertApiExposureSafe } from './api/auth.js';
import { readinessFrom } from './api/call-control.js';
import { createCallManagerControl } from './api/call-manager-control.js';
import { CallEventFeed } from './api/call-feed.js';
import { WebhookDispatcher } from './api/webhooks.js';

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

/** SIP_ALLOWED_SOURCES as a predicate; "twilio" expands to Twilio's signalling networks. */
function allowedSourceCheck(entries: readonly string[]): (address: string) => boolean {
  if (entries.length === 0) return () => true;
  const networks = entries
    .flatMap((e) => (e.toLowerCase() === 'twilio' ? TWILIO_SIGNALLING_NETWORKS : [e]))
    .map((e) => parseIpv4Network(e))
    .filter((n) => n !== undefined);
  return (address) => ipv4InNetworks(address, networks);
}

function createProvider(config: Config): RealtimeProvider {
  const primary = providerNamed(config.ai.provider, config);
  return config.ai.fallbackProvider === undefined
    ? primary
    : new FailoverProvider(primary, providerNamed(config.ai.fallbackProvider, config));
}

function providerNamed(name: Config['ai']['provider'], config: Config): RealtimeProvider {
  switch (name) {
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
  // Refuse to expose call control without a token (toll fraud): checked before anything starts.
  assertApiExposureSafe({
    host: config.api.bindAddress,
    token: config.api.token === '' ? undefined : config.api.token,
  });
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
  const operatorTools = new OperatorTools(loadOperatorTools(config.ai.toolsFile));
  const calls = new CallManager(
    {
      isAllowedSource: allowedSourceCheck(config.sip.allowedSources),
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
      tools: [...toolDeclarations(transferrer?.targetNames ?? []), ...operatorTools.declarations()],
      operatorTools,
      transferrer,
      contextHeaders: config.ai.contextHeaders,
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

  // Registration to a PBX (optional): first REGISTER once drachtio is connected, refresh after reconnects.
  const registration =
    config.registration.registrar === ''
      ? undefined
      : new Registration(
          sip.requester,
          { ...config.registration, userAgent: config.sip.userAgent },
          log.child({ component: 'registration' }),
        );
  let registrationStarted = false;
  sip.on('connected', () => {
    if (!registration) return;
    if (registrationStarted) registration.refresh();
    else registration.start();
    registrationStarted = true;
  });

  // Signed webhooks (optional) follow calls as an observer; the HTTP API drives the call manager.
  const dispatcher =
    config.webhooks.secret === ''
      ? undefined
      : new WebhookDispatcher({
          secret: config.webhooks.secret,
          defaultUrl: config.webhooks.url === '' ? undefined : config.webhooks.url,
          logger: log.child({ component: 'webhooks' }),
        });
  const feed = dispatcher ? new CallEventFeed(calls, dispatcher) : undefined;
  const api = createApiServer({
    control: createCallManagerControl({
      manager: calls,
      transferrer,
      providerName: provider.name,
      defaultInstructions: config.ai.instructions,
      feed,
      readiness: () =>
        readinessFrom({
          drachtioConnected: sip.connected,
          activeCalls: calls.activeCount,
          maxCalls: config.calls.maxConcurrent,
          draining: calls.draining,
          registration: registration && {
            registered: registration.state.status === 'registered',
            detail: registration.state.status,
          },
        }),
    }),
    token: config.api.token === '' ? undefined : config.api.token,
    allowedDestinations: config.api.allowedDestinations,
    rateLimitPerMinute: config.api.rateLimitPerMinute,
    logger: log.child({ component: 'api' }),
  });
  startApiServer(api, { host: config.api.bindAddress, port: config.api.port }).then(
    (address) => log.info({ address }, 'api listening'),
    (error: unknown) => {
      log.fatal({ err: error }, 'api cannot listen; exiting');
      process.exitCode = 1;
      void shutdown().finally(() => process.exit(1));
    },
  );
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
  const shutdown = (): Promise<void> =>
    (shuttingDown ??= (async () => {
      log.info(
        { active: calls.activeCount, graceMs: config.calls.shutdownGraceMs },
        'shutting down: no new calls',
      );
      // Unregister first (needs the drachtio connection) so the PBX stops sending us calls.
      const unregistered = registration?.stop();
      await calls.drain(config.calls.shutdownGraceMs);
      await unregistered;
      await api.close();
      await dispatcher?.close();
      sip.close();
      log.info('shutdown complete');
    })());
  return { sip, calls, shutdown };
}

/** `voxgate twilio setup [...]`: provision the Twilio Elastic SIP trunk, then exit. */
async function twilioCommand(argv: string[]): Promise<never> {
  const env = loadRawEnv();
  const list = (value: string | undefined): string[] | undefined =>
    value === undefined || value.trim() === ''
      ? undefined
      : value
          .split(',')
          .map((v) => v.trim())
          .filter(Boolean);
  const code = await runCli(
    argv,
    {
      accountSid: env.TWILIO_ACCOUNT_SID,
      authToken: env.TWILIO_AUTH_TOKEN,
      sipPublicUri: env.SIP_PUBLIC_URI,
      trunkUsername: env.SIP_TRUNK_USERNAME,
      trunkPassword: env.SIP_TRUNK_PASSWORD,
      trunkFriendlyName: env.TWILIO_TRUNK_NAME,
      trunkDomain: env.TWILIO_TRUNK_DOMAIN,
      phoneNumbers: list(env.TWILIO_PHONE_NUMBERS),
      ipAccessList: list(env.TWILIO_IP_ACL),
      transferMode: env.TWILIO_TRANSFER_MODE,
    },
    {
      createTwilioClient: (sid, token) => createTwilioClient(sid, token),
      print: (line) => console.log(line),
      printError: (line) => console.error(line),
    },
  );
  process.exit(code);
}

function main(): void {
  if (process.argv[2] === 'twilio') {
    void twilioCommand(process.argv.slice(2));
    return;
  }
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
  let app: Voxgate;
  try {
    app = startVoxgate(config, log);
  } catch (error) {
    // Startup refusals (e.g. an API exposed without API_TOKEN) are configuration errors: one line.
    console.error(`config error: ${errorMessage(error)}`);
    process.exit(78);
  }

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
