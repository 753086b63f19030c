// `voxgate twilio setup` end to end through the real twilio SDK, against a local fake of the Twilio REST API
// (test/fakes/twilio-api.ts). The SDK is pointed at the fake with its own `httpClient` option; the fake's
// request client refuses any host but *.twilio.com and rewrites those to 127.0.0.1, so nothing leaves the machine.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli, TWILIO_SETUP_USAGE, type TwilioCliConfig } from '../../../src/cli/cli.js';
import { createTwilioClient, type TwilioLike } from '../../../src/cli/twilio-api.js';
import {
  PhoneNumberNotFoundError,
  planTwilioSetup,
  resolveDesiredTrunk,
  runTwilioSetup,
  TwilioSetupInputError,
  type TrunkState,
  type TwilioSetupOptions,
} from '../../../src/cli/twilio-setup.js';
import { FakeTwilioApi, rewriteTwilioUrl } from '../../fakes/twilio-api.js';

// A syntactically valid, fake Account SID (AC + 32 hex), built so no SID-like literal is committed.
const ACCOUNT_SID = 'AC' + '0123456789abcdef'.repeat(2);
const AUTH_TOKEN = 'f00dfeedf00dfeedf00dfeedf00dfeed';
const PASSWORD = 'Voxgate-Trunk-2026';
const SIP_PUBLIC_URI = 'sip:203.0.113.10:5060;transport=udp';
const DOMAIN = 'voxgate-test.pstn.twilio.com';
const NUMBER_A = '+14155550100';
const NUMBER_B = '+14155550101';

const baseConfig = (over: Partial<TwilioCliConfig> = {}): TwilioCliConfig => ({
  accountSid: ACCOUNT_SID,
  authToken: AUTH_TOKEN,
  sipPublicUri: SIP_PUBLIC_URI,
  trunkUsername: 'voxgate',
  trunkPassword: PASSWORD,
  trunkDomain: DOMAIN,
  ...over,
});

let fake: FakeTwilioApi;

beforeEach(async () => {
  fake = await FakeTwilioApi.start({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
});
afterEach(async () => {
  await fake.close();
});

const sdkClient = (accountSid = ACCOUNT_SID, token = AUTH_TOKEN): TwilioLike =>
  createTwilioClient(accountSid, token, { httpClient: fake.httpClient() });

async function cli(argv: string[], config: TwilioCliConfig = baseConfig()) {
  const out: string[] = [];
  const err: string[] = [];
  let clientsCreated = 0;
  const code = await runCli(argv, config, {
    createTwilioClient: (sid, token) => {
      clientsCreated++;
      return sdkClient(sid, token);
    },
    print: (l) => out.push(l),
    printError: (l) => err.push(l),
  });
  const all = [...out, ...err].join('\n');
  // Whatever happened, secrets never reach the terminal.
  expect(all).not.toContain(AUTH_TOKEN);
  expect(all).not.toContain(config.trunkPassword ?? PASSWORD);
  return { code, out, err, all, clientsCreated };
}

const SETUP = ['twilio', 'setup'];
const WITH_EVERYTHING = [
  ...SETUP,
  '--phone-number',
  NUMBER_A,
  '--phone-number',
  NUMBER_B,
  '--ip',
  '203.0.113.10',
  '--ip',
  '198.51.100.0/24',
];

describe('twilio setup: creating from scratch', () => {
  it('creates the trunk, origination URL, credentials, IP ACL and routes the numbers, with the right fields', async () => {
    const pnA = fake.addIncomingPhoneNumber(NUMBER_A);
    const pnB = fake.addIncomingPhoneNumber(NUMBER_B);

    const { code, out } = await cli(WITH_EVERYTHING);

    expect(code).toBe(0);
    const s = fake.state;
    expect(s.trunks).toHaveLength(1);
    const trunk = s.trunks[0]!;
    expect(trunk).toMatchObject({
      domainName: DOMAIN,
      friendlyName: 'voxgate',
      transferMode: 'enable-all',
      transferCallerId: 'from-transferee',
      secure: false,
    });
    expect(s.originationUrls).toEqual([
      expect.objectContaining({
        trunkSid: trunk.sid,
        sipUrl: SIP_PUBLIC_URI,
        friendlyName: 'voxgate',
        priority: 10,
        weight: 10,
        enabled: true,
      }),
    ]);
    expect(s.credentialLists.map((l) => l.friendlyName)).toEqual(['voxgate-termination']);
    const cl = s.credentialLists[0]!;
    expect(s.credentials).toEqual([
      expect.objectContaining({ credentialListSid: cl.sid, username: 'voxgate', password: PASSWORD }),
    ]);
    expect(s.trunkCredentialLists.get(trunk.sid)).toEqual([cl.sid]);
    const acl = s.ipAccessControlLists[0]!;
    expect(acl.friendlyName).toBe('voxgate-termination-ips');
    expect(s.ipAddresses.map((a) => `${a.ipAddress}/${a.cidrPrefixLength}`)).toEqual([
      '203.0.113.10/32',
      '198.51.100.0/24',
    ]);
    expect(s.trunkIpAccessControlLists.get(trunk.sid)).toEqual([acl.sid]);
    expect(s.incomingNumbers.map((n) => [n.sid, n.trunkSid])).toEqual([
      [pnA, trunk.sid],
      [pnB, trunk.sid],
    ]);

    // What went over the wire, as the SDK form-encodes it.
    const createTrunk = fake.mutations().find((r) => r.path === '/v1/Trunks')!;
    expect(createTrunk.form).toEqual({
      FriendlyName: 'voxgate',
      DomainName: DOMAIN,
      TransferMode: 'enable-all',
      TransferCallerId: 'from-transferee',
      Secure: 'false',
    });
    const createUrl = fake.mutations().find((r) => r.path.endsWith('/OriginationUrls'))!;
    expect(createUrl.form).toEqual({
      FriendlyName: 'voxgate',
      SipUrl: SIP_PUBLIC_URI,
      Priority: '10',
      Weight: '10',
      Enabled: 'true',
    });
    expect(fake.requests.every((r) => r.authorized)).toBe(true);
    expect(out.join('\n')).toContain(`sip:<E.164 number>@${DOMAIN}`);
  });

  it('follows pagination to find existing resources (one item per page)', async () => {
    await fake.close();
    fake = await FakeTwilioApi.start({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, maxPageSize: 1 });
    const api = sdkClient();
    for (const name of ['a', 'b']) {
      await api.createTrunk({
        friendlyName: name,
        domainName: `${name}-other.pstn.twilio.com`,
        transferMode: 'disable-all',
        transferCallerId: 'from-transferee',
        secure: false,
      });
      await api.createCredentialList(`${name}-creds`);
    }
    expect((await cli(SETUP)).code).toBe(0);
    const before = fake.mutations().length;

    const again = await cli(SETUP);

    expect(again.code).toBe(0);
    expect(fake.mutations().length).toBe(before);
    // The SDK walked the pages through the rewriting client (Page=1, Page=2 of /v1/Trunks).
    expect(fake.requests.some((r) => r.path === '/v1/Trunks' && r.query.Page === '2')).toBe(true);
  });
});

describe('twilio setup: idempotence', () => {
  it('a second run with the same settings changes nothing and says so', async () => {
    fake.addIncomingPhoneNumber(NUMBER_A);
    fake.addIncomingPhoneNumber(NUMBER_B);
    expect((await cli(WITH_EVERYTHING)).code).toBe(0);
    const before = fake.mutations().length;

    const { code, out } = await cli(WITH_EVERYTHING);

    expect(code).toBe(0);
    expect(fake.mutations().length).toBe(before);
    const text = out.join('\n');
    expect(text).toContain('no changes');
    expect(text).toMatch(/never returns passwords.*--rotate-password/);
  });

  it('runTwilioSetup plans zero steps on a re-run', async () => {
    const options: TwilioSetupOptions = {
      domainName: DOMAIN,
      sipPublicUri: SIP_PUBLIC_URI,
      username: 'voxgate',
      password: PASSWORD,
    };
    const deps = { client: sdkClient(), print: () => undefined };
    expect((await runTwilioSetup(options, deps)).steps.length).toBeGreaterThan(0);
    expect(await runTwilioSetup(options, deps)).toEqual({ steps: [], applied: true });
  });

  it('when SIP_PUBLIC_URI changes, only the origination URL is updated', async () => {
    fake.addIncomingPhoneNumber(NUMBER_A);
    expect((await cli([...SETUP, '--phone-number', NUMBER_A])).code).toBe(0);
    const urlSid = fake.state.originationUrls[0]!.sid;
    const before = fake.mutations().length;
    const newUri = 'sip:198.51.100.7:5080;transport=tcp';

    const { code } = await cli([...SETUP, '--phone-number', NUMBER_A], baseConfig({ sipPublicUri: newUri }));

    expect(code).toBe(0);
    const changes = fake.mutations().slice(before);
    expect(changes).toHaveLength(1);
    expect(changes[0]).toMatchObject({
      method: 'POST',
      path: `/v1/Trunks/${fake.state.trunks[0]!.sid}/OriginationUrls/${urlSid}`,
      form: { SipUrl: newUri },
    });
    expect(fake.state.originationUrls).toEqual([expect.objectContaining({ sid: urlSid, sipUrl: newUri })]);
  });

  it('corrects a drifted trunk setting and leaves foreign origination URLs alone (noted in the plan)', async () => {
    expect((await cli(SETUP)).code).toBe(0);
    const trunkSid = fake.state.trunks[0]!.sid;
    const api = sdkClient();
    await api.updateTrunk(trunkSid, { transferMode: 'disable-all' });
    await api.createOriginationUrl(trunkSid, {
      friendlyName: 'backup-pbx',
      sipUrl: 'sip:pbx.example.com',
      priority: 20,
      weight: 10,
      enabled: true,
    });
    const before = fake.mutations().length;

    const { code, out } = await cli(SETUP);

    expect(code).toBe(0);
    const changes = fake.mutations().slice(before);
    expect(changes.map((r) => [r.path, r.form])).toEqual([
      [`/v1/Trunks/${trunkSid}`, { TransferMode: 'enable-all' }],
    ]);
    const text = out.join('\n');
    expect(text).toContain('transferMode "disable-all" → "enable-all"');
    expect(text).toMatch(/1 other origination URL.*sip:pbx\.example\.com/);
  });

  it('--rotate-password sets the new password on the existing credential without printing it', async () => {
    expect((await cli(SETUP)).code).toBe(0);
    const newPassword = 'Rotated-Secret-77';
    const before = fake.mutations().length;

    const { code, all } = await cli(
      [...SETUP, '--rotate-password'],
      baseConfig({ trunkPassword: newPassword }),
    );

    expect(code).toBe(0);
    expect(fake.mutations().slice(before)).toHaveLength(1);
    expect(fake.state.credentials[0]!.password).toBe(newPassword);
    expect(all).toContain('--rotate-password');
  });
});

describe('twilio setup --dry-run', () => {
  it('prints the plan and sends no change', async () => {
    fake.addIncomingPhoneNumber(NUMBER_A);

    const { code, out } = await cli([
      ...SETUP,
      '--dry-run',
      '--phone-number',
      NUMBER_A,
      '--ip',
      '203.0.113.10',
    ]);

    expect(code).toBe(0);
    expect(fake.mutations()).toEqual([]);
    expect(fake.requests.length).toBeGreaterThan(0); // it did read the current state
    const text = out.join('\n');
    for (const line of [
      `+ create trunk "voxgate" (domain ${DOMAIN}, transferMode enable-all`,
      `+ create origination URL ${SIP_PUBLIC_URI} ("voxgate", priority 10, weight 10, enabled)`,
      '+ create credential list "voxgate-termination"',
      '+ create credential "voxgate" in "voxgate-termination"',
      '+ associate credential list "voxgate-termination" with the trunk',
      '+ add 203.0.113.10/32 to "voxgate-termination-ips"',
      `+ route ${NUMBER_A}`,
      'dry run: nothing was changed',
    ])
      expect(text).toContain(line);
  });

  it('runTwilioSetup reports applied: false', async () => {
    const result = await runTwilioSetup(
      {
        domainName: DOMAIN,
        sipPublicUri: SIP_PUBLIC_URI,
        username: 'voxgate',
        password: PASSWORD,
        dryRun: true,
      },
      { client: sdkClient(), print: () => undefined },
    );
    expect(result.applied).toBe(false);
    expect(result.steps.map((s) => s.kind)).toEqual([
      'create-trunk',
      'create-origination-url',
      'create-credential-list',
      'create-credential',
      'associate-credential-list',
    ]);
    expect(fake.mutations()).toEqual([]);
  });
});

describe('twilio setup: Twilio errors', () => {
  it('shows a taken trunk domain as one line with code 21248, a hint and the docs link; exit 1', async () => {
    fake.takenDomains.add(DOMAIN);

    const { code, err } = await cli(SETUP);

    expect(code).toBe(1);
    const lines = err.filter((l) => l.includes('21248'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^Twilio error 21248 \(HTTP 400\) while creating trunk voxgate-test\.pstn\.twilio\.com: /,
    );
    expect(lines[0]).toContain('Trunk Domain already taken');
    expect(lines[0]).toMatch(/hint: .*--domain/);
    expect(lines[0]).toContain('https://www.twilio.com/docs/errors/21248');
    expect(fake.state.trunks).toEqual([]);
  });

  it('a wrong auth token fails with 20003 and a hint about the credentials', async () => {
    const { code, err } = await cli(SETUP, baseConfig({ authToken: 'badbadbadbadbadbadbadbadbadbad00' }));

    expect(code).toBe(1);
    expect(err.join('\n')).toMatch(
      /Twilio error 20003 \(HTTP 401\) while reading.*hint: .*TWILIO_AUTH_TOKEN/,
    );
    expect(fake.mutations()).toEqual([]);
  });

  it('a failure mid-way says how much was applied, and a re-run finishes the job', async () => {
    const pn = fake.addIncomingPhoneNumber(NUMBER_A);
    fake.failNext(
      { method: 'POST', path: /\/PhoneNumbers$/ },
      { status: 500, code: 20500, message: 'Internal Server Error' },
    );

    const first = await cli([...SETUP, '--phone-number', NUMBER_A]);

    expect(first.code).toBe(1);
    expect(first.err.join('\n')).toMatch(/Twilio error 20500 \(HTTP 500\).*re-run/);
    expect(first.err.join('\n')).toContain('5 of 6 change(s) were applied before the failure');

    const second = await cli([...SETUP, '--phone-number', NUMBER_A]);

    expect(second.code).toBe(0);
    expect(fake.state.incomingNumbers.find((n) => n.sid === pn)!.trunkSid).toBe(fake.state.trunks[0]!.sid);
    expect(second.out.filter((l) => l.startsWith('  +') || l.startsWith('  ~'))).toHaveLength(1);
  });

  it('redacts the token and password even when Twilio echoes them', async () => {
    fake.failNext(
      { method: 'GET', path: /^\/v1\/Trunks$/ },
      { status: 400, code: 20001, message: `rejected ${AUTH_TOKEN} / ${PASSWORD}` },
    );

    const { code, err } = await cli(SETUP); // cli() asserts neither secret is printed

    expect(code).toBe(1);
    expect(err.join('\n')).toContain('rejected [redacted] / [redacted]');
  });

  it('an unreachable API is reported with the socket error and a network hint (exit 1)', async () => {
    const httpClient = fake.httpClient();
    await fake.close();
    const out: string[] = [];

    const code = await runCli(SETUP, baseConfig(), {
      createTwilioClient: (sid, token) => createTwilioClient(sid, token, { httpClient }),
      print: (l) => out.push(l),
    });

    expect(code).toBe(1);
    expect(out.join('\n')).toMatch(
      /reading the current Twilio configuration: .*\[ECONNREFUSED\] — hint: could not talk/,
    );
    fake = await FakeTwilioApi.start({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN }); // for afterEach
  });

  it('a phone number the account does not own is reported before any change (exit 2)', async () => {
    const { code, err } = await cli([...SETUP, '--phone-number', NUMBER_A]);

    expect(code).toBe(2);
    expect(err.join('\n')).toContain(`phone number ${NUMBER_A} is not a number of this Twilio account`);
    expect(fake.mutations()).toEqual([]);
  });
});

describe('twilio setup: input validation happens before any request', () => {
  const rejects = async (argv: string[], config: TwilioCliConfig, message: RegExp) => {
    const { code, err, clientsCreated } = await cli(argv, config);
    expect(code).toBe(2);
    expect(err.join('\n')).toMatch(message);
    expect(clientsCreated).toBe(0);
    expect(fake.requests).toEqual([]);
  };

  it('rejects a domain that does not end in pstn.twilio.com', () =>
    rejects([...SETUP, '--domain', 'voxgate.example.com'], baseConfig(), /must end in pstn\.twilio\.com/));

  it('rejects a weak password and explains the rules without echoing it', () =>
    rejects(
      SETUP,
      baseConfig({ trunkPassword: 'weakpass' }),
      /SIP_TRUNK_PASSWORD .*12\+ characters, a digit, mixed case.*at least 12 characters \(it has 8\), a digit, an upper-case letter/,
    ));

  it('rejects a sips: or non-SIP SIP_PUBLIC_URI', async () => {
    await rejects(SETUP, baseConfig({ sipPublicUri: 'sips:203.0.113.10:5061' }), /sips:.*transport=tls/);
    await rejects(SETUP, baseConfig({ sipPublicUri: 'http://203.0.113.10' }), /must be a sip: URI/);
    await rejects(SETUP, baseConfig({ sipPublicUri: 'sip:203.0.113.10:70000' }), /invalid port/);
  });

  it('rejects bad numbers, addresses, account SID and missing settings, listing every problem', () =>
    rejects(
      [...SETUP, '--phone-number', '4155550100', '--ip', '203.0.113.0/4'],
      baseConfig({ accountSid: 'XX123', trunkUsername: undefined }),
      /TWILIO_ACCOUNT_SID must be "AC".*\n.*SIP_TRUNK_USERNAME is not set\n.*\/8 to \/32\n.*"4155550100" is not E\.164/,
    ));

  it('resolveDesiredTrunk lists every problem at once', () => {
    let problems: readonly string[] = [];
    try {
      resolveDesiredTrunk({
        sipPublicUri: 'sip:user@203.0.113.10',
        username: 'x'.repeat(33),
        password: PASSWORD,
        phoneNumbers: ['4155550100'],
        ipAddresses: ['2001:db8::1', '203.0.113.0/4'],
      });
    } catch (err) {
      expect(err).toBeInstanceOf(TwilioSetupInputError);
      if (err instanceof TwilioSetupInputError) problems = err.problems;
    }
    expect(problems).toEqual([
      expect.stringMatching(/must not contain a user part/),
      expect.stringMatching(/SIP_TRUNK_USERNAME must be at most 32 characters/),
      expect.stringMatching(/"2001:db8::1" is not an IPv4 address.*IPv4 only/),
      expect.stringMatching(/"203\.0\.113\.0\/4" needs a prefix length from \/8 to \/32/),
      expect.stringMatching(/"4155550100" is not E\.164/),
    ]);
  });
});

describe('planTwilioSetup (pure)', () => {
  const desired = resolveDesiredTrunk({
    domainName: DOMAIN,
    sipPublicUri: SIP_PUBLIC_URI,
    username: 'voxgate',
    password: PASSWORD,
    phoneNumbers: [NUMBER_A],
  });
  const empty: TrunkState = {
    trunk: null,
    namesakeTrunks: [],
    originationUrls: [],
    credentialList: null,
    trunkCredentialListSids: [],
    ipAccessControlList: null,
    trunkIpAccessControlListSids: [],
    phoneNumbers: [],
    trunkPhoneNumberSids: [],
  };

  it('refuses to plan for a number that is not on the account', () => {
    expect(() => planTwilioSetup(empty, desired)).toThrow(PhoneNumberNotFoundError);
  });

  it('moves a number attached to another trunk, and says so', () => {
    const steps = planTwilioSetup(
      { ...empty, phoneNumbers: [{ sid: 'PN1', phoneNumber: NUMBER_A, trunkSid: 'TKother' }] },
      desired,
    );
    expect(steps.at(-1)).toEqual({
      kind: 'associate-phone-number',
      phoneNumber: NUMBER_A,
      phoneNumberSid: 'PN1',
      previousTrunkSid: 'TKother',
    });
  });
});

describe('voxgate CLI parsing', () => {
  it('--help prints the usage and exits 0 without touching Twilio', async () => {
    const { code, out, clientsCreated } = await cli([...SETUP, '--help']);
    expect(code).toBe(0);
    expect(out[0]).toBe(TWILIO_SETUP_USAGE);
    expect(out.join('\n')).toContain('--rotate-password');
    expect(clientsCreated).toBe(0);
  });

  it.each([
    [[...SETUP, '--bogus'], /Unknown option '--bogus'/],
    [[...SETUP, '--domain'], /argument missing/],
    [['twilio', 'teardown'], /unknown command "twilio teardown"/],
    [[...SETUP, 'extra'], /unknown command "twilio setup extra"/],
    [[...SETUP, '--transfer-mode', 'disable-all'], /transfer mode must be enable-all or sip-only/],
  ])('%j exits 2 with a usage line', async (argv, message) => {
    const { code, err } = await cli(argv);
    expect(code).toBe(2);
    expect(err.join('\n')).toMatch(message);
    expect(fake.requests).toEqual([]);
  });

  it('usage errors print the usage line', async () => {
    const { err } = await cli([...SETUP, '--bogus']);
    expect(err).toContain(TWILIO_SETUP_USAGE);
  });
});

describe('the fake’s request client', () => {
  it('rewrites Twilio hosts (with edge/region) to the fake and refuses anything else', () => {
    expect(rewriteTwilioUrl('https://trunking.twilio.com/v1/Trunks?Page=1', 'http://127.0.0.1:1')).toBe(
      'http://127.0.0.1:1/trunking/v1/Trunks?Page=1',
    );
    expect(
      rewriteTwilioUrl('https://api.sydney.au1.twilio.com/2010-04-01/x.json', 'http://127.0.0.1:1'),
    ).toBe('http://127.0.0.1:1/api/2010-04-01/x.json');
    expect(() => rewriteTwilioUrl('https://example.com/', 'http://127.0.0.1:1')).toThrow(/refuses/);
    expect(() => rewriteTwilioUrl('https://studio.twilio.com/v2/Flows', 'http://127.0.0.1:1')).toThrow(
      /refuses/,
    );
  });
});
