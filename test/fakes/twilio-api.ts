// A local node:http fake of the Twilio REST endpoints `voxgate twilio setup` uses, with in-memory state.
// Shapes follow the twilio 6.2.0 SDK and twilio.com/docs (sip-stack.md §3.7):
//   trunking.twilio.com/v1/Trunks[/{TK}[/OriginationUrls|/CredentialLists|/IpAccessControlLists|/PhoneNumbers[/{sid}]]]
//   api.twilio.com/2010-04-01/Accounts/{AC}/SIP/{CredentialLists[/{CL}/Credentials]|IpAccessControlLists[/{AL}/IpAddresses]}.json
//   api.twilio.com/2010-04-01/Accounts/{AC}/IncomingPhoneNumbers.json
// Requests are form-encoded; responses are Twilio-shaped JSON (snake_case, sid prefixes TK/OU/CL/CR/AL/IP/PN,
// v1 pagination under `meta` with `meta.key`, v2010 pagination at top level with relative `next_page_uri`).
// Errors are `{ code, message, more_info, status }`. Codes 20003, 20404, 21240 and 21248 are Twilio's own;
// 20001 is used here as a stand-in for Twilio's various invalid-parameter errors.
//
// The SDK is pointed at the fake through its own seam, the `httpClient` option: `fake.httpClient()` is a
// `twilio.RequestClient` that rewrites https://<product>.twilio.com/… to http://127.0.0.1:<port>/<product>/…
// and refuses any other host, so a test can never reach Twilio.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isIPv4 } from 'node:net';
import twilio from 'twilio';

// ---------------------------------------------------------------------------------------------------
// Public API

export interface FakeTwilioOptions {
  accountSid: string;
  authToken: string;
  /** Cap on page size, to force the SDK through pagination (default 50, Twilio's default). */
  maxPageSize?: number;
  /** Domains "taken by another account": creating a trunk with one fails with 21248. */
  takenDomains?: readonly string[];
}

export interface FakeTwilioError {
  status: number;
  code: number;
  message: string;
}

export interface RecordedRequest {
  method: string;
  product: string;
  /** The path as Twilio would see it, e.g. `/v1/Trunks` or `/2010-04-01/Accounts/AC…/SIP/CredentialLists.json`. */
  path: string;
  query: Record<string, string>;
  form: Record<string, string>;
  authorized: boolean;
  status: number;
}

export interface TrunkRow {
  sid: string;
  friendlyName: string | null;
  domainName: string | null;
  transferMode: string;
  transferCallerId: string;
  secure: boolean;
  cnamLookupEnabled: boolean;
  disasterRecoveryUrl: string | null;
  disasterRecoveryMethod: string | null;
  created: Date;
  updated: Date;
}
export interface OriginationUrlRow {
  sid: string;
  trunkSid: string;
  friendlyName: string;
  sipUrl: string;
  priority: number;
  weight: number;
  enabled: boolean;
  created: Date;
  updated: Date;
}
export interface CredentialListRow {
  sid: string;
  friendlyName: string;
  created: Date;
  updated: Date;
}
export interface CredentialRow {
  sid: string;
  credentialListSid: string;
  username: string;
  /** Kept so tests can check what was set; Twilio never returns it and neither does the fake. */
  password: string;
  created: Date;
  updated: Date;
}
export interface IpAclRow {
  sid: string;
  friendlyName: string;
  created: Date;
  updated: Date;
}
export interface IpAddressRow {
  sid: string;
  ipAccessControlListSid: string;
  friendlyName: string;
  ipAddress: string;
  cidrPrefixLength: number;
  created: Date;
  updated: Date;
}
export interface IncomingNumberRow {
  sid: string;
  phoneNumber: string;
  friendlyName: string;
  trunkSid: string | null;
  created: Date;
  updated: Date;
}

export interface FakeTwilioState {
  trunks: TrunkRow[];
  originationUrls: OriginationUrlRow[];
  credentialLists: CredentialListRow[];
  credentials: CredentialRow[];
  ipAccessControlLists: IpAclRow[];
  ipAddresses: IpAddressRow[];
  incomingNumbers: IncomingNumberRow[];
  /** trunk sid → associated credential list sids / IP ACL sids */
  trunkCredentialLists: Map<string, string[]>;
  trunkIpAccessControlLists: Map<string, string[]>;
}

interface Injection {
  method: string | undefined;
  path: RegExp;
  error: FakeTwilioError;
  remaining: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

type Query = Record<string, string>;
type Form = Record<string, string>;
type Handler = (params: string[], query: Query, form: Form) => { status: number; body: unknown };

const DEFAULT_PAGE_SIZE = 50;
const TRUNKING_BASE = 'https://trunking.twilio.com';
const API_VERSION = '2010-04-01';

export class FakeTwilioApi {
  readonly state: FakeTwilioState = {
    trunks: [],
    originationUrls: [],
    credentialLists: [],
    credentials: [],
    ipAccessControlLists: [],
    ipAddresses: [],
    incomingNumbers: [],
    trunkCredentialLists: new Map(),
    trunkIpAccessControlLists: new Map(),
  };
  readonly requests: RecordedRequest[] = [];
  readonly takenDomains: Set<string>;
  private readonly injections: Injection[] = [];
  private readonly routes: { method: string; product: string; re: RegExp; handler: Handler }[] = [];
  private sidCounter = 0;

  private readonly server: Server;
  private port = 0;

  private constructor(private readonly options: FakeTwilioOptions) {
    this.takenDomains = new Set(options.takenDomains ?? []);
    this.server = createServer((req, res) => this.handle(req, res));
    this.defineRoutes();
  }

  static async start(options: FakeTwilioOptions): Promise<FakeTwilioApi> {
    const fake = new FakeTwilioApi(options);
    await new Promise<void>((resolve, reject) => {
      fake.server.once('error', reject);
      fake.server.listen(0, '127.0.0.1', () => resolve());
    });
    fake.port = (fake.server.address() as AddressInfo).port;
    return fake;
  }

  /** `http://127.0.0.1:<port>`; paths below it are `/<product>/<Twilio path>`. */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** A `twilio.RequestClient` for `twilio(sid, token, { httpClient })` that talks to this fake only. */
  httpClient(): twilio.RequestClient {
    return new LoopbackTwilioRequestClient(this.baseUrl);
  }

  /** Make the next `times` requests matching `method` + `path` (Twilio-form path) fail with `error`. */
  failNext(match: { method?: string; path: RegExp }, error: FakeTwilioError, times = 1): void {
    this.injections.push({ method: match.method?.toUpperCase(), path: match.path, error, remaining: times });
  }

  /** An IncomingPhoneNumber owned by the account (bought in the Console, say); returns its PN sid. */
  addIncomingPhoneNumber(phoneNumber: string, friendlyName = phoneNumber): string {
    const now = new Date();
    const sid = this.sid('PN');
    this.state.incomingNumbers.push({
      sid,
      phoneNumber,
      friendlyName,
      trunkSid: null,
      created: now,
      updated: now,
    });
    return sid;
  }

  /** Requests that would have changed something (everything but GET). */
  mutations(): RecordedRequest[] {
    return this.requests.filter((r) => r.method !== 'GET');
  }

  trunkByDomain(domainName: string): TrunkRow | undefined {
    return this.state.trunks.find((t) => t.domainName === domainName);
  }

  // -------------------------------------------------------------------------------------------------
  // HTTP plumbing

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', this.baseUrl);
      const [, product = '', ...rest] = url.pathname.split('/');
      const path = `/${rest.join('/')}`;
      const method = (req.method ?? 'GET').toUpperCase();
      const query: Query = Object.fromEntries(url.searchParams);
      const form: Form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
      const authorized = this.isAuthorized(req.headers.authorization);
      const record: RecordedRequest = { method, product, path, query, form, authorized, status: 0 };
      this.requests.push(record);

      let status: number;
      let body: unknown;
      try {
        ({ status, body } = this.dispatch(method, product, path, query, form, authorized));
      } catch (err) {
        if (!(err instanceof HttpError)) throw err;
        status = err.status;
        body = {
          code: err.code,
          message: err.message,
          more_info: `https://www.twilio.com/docs/errors/${err.code}`,
          status: err.status,
        };
      }
      record.status = status;
      if (status === 204) {
        res.writeHead(204).end();
        return;
      }
      const json = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(json),
      });
      res.end(json);
    });
  }

  private isAuthorized(header: string | undefined): boolean {
    const expected = Buffer.from(`${this.options.accountSid}:${this.options.authToken}`).toString('base64');
    return header === `Basic ${expected}`;
  }

  private dispatch(
    method: string,
    product: string,
    path: string,
    query: Query,
    form: Form,
    authorized: boolean,
  ): { status: number; body: unknown } {
    if (!authorized) throw new HttpError(401, 20003, 'Authenticate');
    const injection = this.injections.find(
      (i) => i.remaining > 0 && (i.method === undefined || i.method === method) && i.path.test(path),
    );
    if (injection !== undefined) {
      injection.remaining--;
      throw new HttpError(injection.error.status, injection.error.code, injection.error.message);
    }
    for (const route of this.routes) {
      if (route.method !== method || route.product !== product) continue;
      const m = route.re.exec(path);
      if (m !== null) return route.handler(m.slice(1), query, form);
    }
    throw new HttpError(404, 20404, `The requested resource ${path} was not found`);
  }

  private on(method: string, product: string, re: RegExp, handler: Handler): void {
    this.routes.push({ method, product, re, handler });
  }

  private sid(prefix: string): string {
    this.sidCounter++;
    return `${prefix}${this.sidCounter.toString(16).padStart(32, '0')}`;
  }

  // -------------------------------------------------------------------------------------------------
  // Pagination

  private pageOf<T>(items: T[], query: Query): { page: number; size: number; slice: T[]; hasNext: boolean } {
    const requested = Number(query.PageSize ?? DEFAULT_PAGE_SIZE);
    const size = Math.max(1, Math.min(requested, this.options.maxPageSize ?? DEFAULT_PAGE_SIZE));
    const page = Number(query.Page ?? 0);
    const slice = items.slice(page * size, (page + 1) * size);
    return { page, size, slice, hasNext: (page + 1) * size < items.length };
  }

  /** trunking v1: `{ <key>: [...], meta: { ..., next_page_url (absolute), key } }` */
  private v1List<T>(path: string, key: string, items: T[], query: Query, json: (t: T) => unknown) {
    const { page, size, slice, hasNext } = this.pageOf(items, query);
    const url = (p: number) => `${TRUNKING_BASE}${path}?PageSize=${size}&Page=${p}`;
    const token = (p: number) => `&PageToken=PT${p.toString(16).padStart(32, '0')}`;
    return {
      status: 200,
      body: {
        [key]: slice.map(json),
        meta: {
          page,
          page_size: size,
          first_page_url: url(0),
          previous_page_url: page > 0 ? url(page - 1) + token(page - 1) : null,
          url: url(page),
          next_page_url: hasNext ? url(page + 1) + token(page + 1) : null,
          key,
        },
      },
    };
  }

  /** api v2010: `{ <key>: [...], page, page_size, next_page_uri (relative), uri, start, end, ... }` */
  private v2010List<T>(path: string, key: string, items: T[], query: Query, json: (t: T) => unknown) {
    const { page, size, slice, hasNext } = this.pageOf(items, query);
    const filters = Object.entries(query)
      .filter(([k]) => k !== 'Page' && k !== 'PageSize' && k !== 'PageToken')
      .map(([k, v]) => `&${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .join('');
    const uri = (p: number) => `${path}?PageSize=${size}&Page=${p}${filters}`;
    return {
      status: 200,
      body: {
        [key]: slice.map(json),
        first_page_uri: uri(0),
        next_page_uri: hasNext ? `${uri(page + 1)}&PageToken=PA${(page + 1).toString(16)}` : null,
        previous_page_uri: page > 0 ? uri(page - 1) : null,
        page,
        page_size: size,
        start: page * size,
        end: page * size + Math.max(0, slice.length - 1),
        uri: uri(page),
      },
    };
  }

  // -------------------------------------------------------------------------------------------------
  // JSON shapes

  private trunkJson = (t: TrunkRow) => {
    const url = `${TRUNKING_BASE}/v1/Trunks/${t.sid}`;
    const cls = this.state.trunkCredentialLists.get(t.sid) ?? [];
    const acls = this.state.trunkIpAccessControlLists.get(t.sid) ?? [];
    const authTypes = [
      ...(acls.length > 0 ? ['IP_ACL'] : []),
      ...(cls.length > 0 ? ['CREDENTIAL_LIST'] : []),
    ];
    return {
      account_sid: this.options.accountSid,
      domain_name: t.domainName,
      disaster_recovery_method: t.disasterRecoveryMethod,
      disaster_recovery_url: t.disasterRecoveryUrl,
      friendly_name: t.friendlyName,
      secure: t.secure,
      recording: { mode: 'do-not-record', trim: 'do-not-trim' },
      transfer_mode: t.transferMode,
      transfer_caller_id: t.transferCallerId,
      cnam_lookup_enabled: t.cnamLookupEnabled,
      auth_type: authTypes.join(','),
      symmetric_rtp_enabled: false,
      auth_type_set: authTypes,
      date_created: t.created.toISOString(),
      date_updated: t.updated.toISOString(),
      sid: t.sid,
      url,
      links: {
        origination_urls: `${url}/OriginationUrls`,
        credential_lists: `${url}/CredentialLists`,
        ip_access_control_lists: `${url}/IpAccessControlLists`,
        phone_numbers: `${url}/PhoneNumbers`,
        recording: `${url}/Recording`,
      },
    };
  };

  private originationUrlJson = (u: OriginationUrlRow) => ({
    account_sid: this.options.accountSid,
    sid: u.sid,
    trunk_sid: u.trunkSid,
    weight: u.weight,
    enabled: u.enabled,
    sip_url: u.sipUrl,
    friendly_name: u.friendlyName,
    priority: u.priority,
    date_created: u.created.toISOString(),
    date_updated: u.updated.toISOString(),
    url: `${TRUNKING_BASE}/v1/Trunks/${u.trunkSid}/OriginationUrls/${u.sid}`,
  });

  private trunkAssociationJson = (
    trunkSid: string,
    kind: string,
    row: { sid: string; friendlyName: string },
  ) => ({
    account_sid: this.options.accountSid,
    sid: row.sid,
    trunk_sid: trunkSid,
    friendly_name: row.friendlyName,
    date_created: new Date().toISOString(),
    date_updated: new Date().toISOString(),
    url: `${TRUNKING_BASE}/v1/Trunks/${trunkSid}/${kind}/${row.sid}`,
  });

  private trunkPhoneNumberJson = (n: IncomingNumberRow) => ({
    account_sid: this.options.accountSid,
    sid: n.sid,
    trunk_sid: n.trunkSid,
    phone_number: n.phoneNumber,
    friendly_name: n.friendlyName,
    api_version: API_VERSION,
    beta: false,
    capabilities: { voice: true, sms: false, mms: false, fax: false },
    voice_url: null,
    voice_method: 'POST',
    date_created: n.created.toISOString(),
    date_updated: n.updated.toISOString(),
    url: `${TRUNKING_BASE}/v1/Trunks/${n.trunkSid ?? ''}/PhoneNumbers/${n.sid}`,
    links: {
      phone_number: `https://api.twilio.com/${API_VERSION}/Accounts/${this.options.accountSid}/IncomingPhoneNumbers/${n.sid}.json`,
    },
  });

  private accountPath = () => `/${API_VERSION}/Accounts/${this.options.accountSid}`;

  private credentialListJson = (l: CredentialListRow) => ({
    account_sid: this.options.accountSid,
    sid: l.sid,
    friendly_name: l.friendlyName,
    date_created: rfc2822(l.created),
    date_updated: rfc2822(l.updated),
    subresource_uris: { credentials: `${this.accountPath()}/SIP/CredentialLists/${l.sid}/Credentials.json` },
    uri: `${this.accountPath()}/SIP/CredentialLists/${l.sid}.json`,
  });

  private credentialJson = (c: CredentialRow) => ({
    account_sid: this.options.accountSid,
    sid: c.sid,
    credential_list_sid: c.credentialListSid,
    username: c.username,
    date_created: rfc2822(c.created),
    date_updated: rfc2822(c.updated),
    uri: `${this.accountPath()}/SIP/CredentialLists/${c.credentialListSid}/Credentials/${c.sid}.json`,
  });

  private ipAclJson = (l: IpAclRow) => ({
    account_sid: this.options.accountSid,
    sid: l.sid,
    friendly_name: l.friendlyName,
    date_created: rfc2822(l.created),
    date_updated: rfc2822(l.updated),
    subresource_uris: {
      ip_addresses: `${this.accountPath()}/SIP/IpAccessControlLists/${l.sid}/IpAddresses.json`,
    },
    uri: `${this.accountPath()}/SIP/IpAccessControlLists/${l.sid}.json`,
  });

  private ipAddressJson = (a: IpAddressRow) => ({
    account_sid: this.options.accountSid,
    sid: a.sid,
    ip_access_control_list_sid: a.ipAccessControlListSid,
    friendly_name: a.friendlyName,
    ip_address: a.ipAddress,
    cidr_prefix_length: a.cidrPrefixLength,
    date_created: rfc2822(a.created),
    date_updated: rfc2822(a.updated),
    uri: `${this.accountPath()}/SIP/IpAccessControlLists/${a.ipAccessControlListSid}/IpAddresses/${a.sid}.json`,
  });

  private incomingNumberJson = (n: IncomingNumberRow) => ({
    account_sid: this.options.accountSid,
    sid: n.sid,
    phone_number: n.phoneNumber,
    friendly_name: n.friendlyName,
    trunk_sid: n.trunkSid,
    api_version: API_VERSION,
    beta: false,
    capabilities: { voice: true, sms: false, mms: false, fax: false },
    origin: 'twilio',
    status: 'in-use',
    voice_url: '',
    voice_method: 'POST',
    date_created: rfc2822(n.created),
    date_updated: rfc2822(n.updated),
    uri: `${this.accountPath()}/IncomingPhoneNumbers/${n.sid}.json`,
  });

  // -------------------------------------------------------------------------------------------------
  // Lookups and validation

  private trunk(sid: string): TrunkRow {
    const t = this.state.trunks.find((x) => x.sid === sid);
    if (t === undefined)
      throw new HttpError(404, 20404, `The requested resource /Trunks/${sid} was not found`);
    return t;
  }
  private credentialList(sid: string): CredentialListRow {
    const l = this.state.credentialLists.find((x) => x.sid === sid);
    if (l === undefined)
      throw new HttpError(404, 20404, `The requested resource CredentialList ${sid} was not found`);
    return l;
  }
  private ipAcl(sid: string): IpAclRow {
    const l = this.state.ipAccessControlLists.find((x) => x.sid === sid);
    if (l === undefined)
      throw new HttpError(404, 20404, `The requested resource IpAccessControlList ${sid} was not found`);
    return l;
  }
  private checkAccount(accountSid: string | undefined): void {
    if (accountSid !== this.options.accountSid) throw new HttpError(401, 20003, 'Authenticate');
  }

  private applyTrunkFields(t: TrunkRow, form: Form): void {
    if (form.DomainName !== undefined) {
      const domain = form.DomainName.toLowerCase();
      const taken =
        this.takenDomains.has(domain) ||
        this.state.trunks.some((o) => o !== t && o.domainName?.toLowerCase() === domain);
      if (taken) throw new HttpError(400, 21248, 'Trunk Domain already taken');
      t.domainName = form.DomainName;
    }
    if (form.FriendlyName !== undefined) t.friendlyName = form.FriendlyName;
    if (form.TransferMode !== undefined) {
      if (!['disable-all', 'enable-all', 'sip-only'].includes(form.TransferMode))
        throw new HttpError(400, 20001, `Invalid TransferMode: ${form.TransferMode}`);
      t.transferMode = form.TransferMode;
    }
    if (form.TransferCallerId !== undefined) {
      if (!['from-transferee', 'from-transferor'].includes(form.TransferCallerId))
        throw new HttpError(400, 20001, `Invalid TransferCallerId: ${form.TransferCallerId}`);
      t.transferCallerId = form.TransferCallerId;
    }
    if (form.Secure !== undefined) t.secure = bool(form.Secure, 'Secure');
    if (form.CnamLookupEnabled !== undefined)
      t.cnamLookupEnabled = bool(form.CnamLookupEnabled, 'CnamLookupEnabled');
    if (form.DisasterRecoveryUrl !== undefined) t.disasterRecoveryUrl = form.DisasterRecoveryUrl;
    if (form.DisasterRecoveryMethod !== undefined) t.disasterRecoveryMethod = form.DisasterRecoveryMethod;
  }

  private applyOriginationFields(u: OriginationUrlRow, form: Form): void {
    if (form.SipUrl !== undefined) {
      if (!/^sip:/i.test(form.SipUrl)) throw new HttpError(400, 20001, 'SipUrl must use the sip: scheme');
      u.sipUrl = form.SipUrl;
    }
    if (form.FriendlyName !== undefined) u.friendlyName = form.FriendlyName;
    if (form.Priority !== undefined) u.priority = int(form.Priority, 'Priority', 0, 65535);
    if (form.Weight !== undefined) u.weight = int(form.Weight, 'Weight', 1, 65535);
    if (form.Enabled !== undefined) u.enabled = bool(form.Enabled, 'Enabled');
  }

  // -------------------------------------------------------------------------------------------------
  // Routes

  private defineRoutes(): void {
    const S = this.state;
    const now = () => new Date();
    const ID = '([A-Z]{2}[0-9a-f]{32})';
    const T = `^/v1/Trunks/${ID}`;
    const A = `^/${API_VERSION}/Accounts/(AC[0-9a-fA-F]{32})`;

    // --- trunking v1: Trunks
    this.on('GET', 'trunking', /^\/v1\/Trunks$/, (_p, q) =>
      this.v1List('/v1/Trunks', 'trunks', S.trunks, q, this.trunkJson),
    );
    this.on('POST', 'trunking', /^\/v1\/Trunks$/, (_p, _q, form) => {
      const t: TrunkRow = {
        sid: this.sid('TK'),
        friendlyName: null,
        domainName: null,
        transferMode: 'disable-all',
        transferCallerId: 'from-transferee',
        secure: false,
        cnamLookupEnabled: false,
        disasterRecoveryUrl: null,
        disasterRecoveryMethod: null,
        created: now(),
        updated: now(),
      };
      this.applyTrunkFields(t, form);
      S.trunks.push(t);
      return { status: 201, body: this.trunkJson(t) };
    });
    this.on('GET', 'trunking', new RegExp(`${T}$`), ([tk = '']) => ({
      status: 200,
      body: this.trunkJson(this.trunk(tk)),
    }));
    this.on('POST', 'trunking', new RegExp(`${T}$`), ([tk = ''], _q, form) => {
      const t = this.trunk(tk);
      this.applyTrunkFields(t, form);
      t.updated = now();
      return { status: 200, body: this.trunkJson(t) };
    });
    this.on('DELETE', 'trunking', new RegExp(`${T}$`), ([tk = '']) => {
      this.trunk(tk);
      S.trunks = S.trunks.filter((t) => t.sid !== tk);
      S.originationUrls = S.originationUrls.filter((u) => u.trunkSid !== tk);
      for (const n of S.incomingNumbers) if (n.trunkSid === tk) n.trunkSid = null;
      return { status: 204, body: null };
    });

    // --- trunking v1: OriginationUrls
    const ouPath = (tk: string) => `/v1/Trunks/${tk}/OriginationUrls`;
    this.on('GET', 'trunking', new RegExp(`${T}/OriginationUrls$`), ([tk = ''], q) => {
      this.trunk(tk);
      const urls = S.originationUrls.filter((u) => u.trunkSid === tk);
      return this.v1List(ouPath(tk), 'origination_urls', urls, q, this.originationUrlJson);
    });
    this.on('POST', 'trunking', new RegExp(`${T}/OriginationUrls$`), ([tk = ''], _q, form) => {
      this.trunk(tk);
      for (const key of ['FriendlyName', 'SipUrl', 'Priority', 'Weight', 'Enabled'])
        if (form[key] === undefined)
          throw new HttpError(400, 20001, `Missing required parameter ${key} in the post body`);
      const u: OriginationUrlRow = {
        sid: this.sid('OU'),
        trunkSid: tk,
        friendlyName: '',
        sipUrl: '',
        priority: 10,
        weight: 10,
        enabled: true,
        created: now(),
        updated: now(),
      };
      this.applyOriginationFields(u, form);
      S.originationUrls.push(u);
      return { status: 201, body: this.originationUrlJson(u) };
    });
    const ou = (tk: string, sid: string): OriginationUrlRow => {
      const u = S.originationUrls.find((x) => x.trunkSid === tk && x.sid === sid);
      if (u === undefined)
        throw new HttpError(404, 20404, `The requested resource ${ouPath(tk)}/${sid} was not found`);
      return u;
    };
    this.on('GET', 'trunking', new RegExp(`${T}/OriginationUrls/${ID}$`), ([tk = '', sid = '']) => ({
      status: 200,
      body: this.originationUrlJson(ou(tk, sid)),
    }));
    this.on(
      'POST',
      'trunking',
      new RegExp(`${T}/OriginationUrls/${ID}$`),
      ([tk = '', sid = ''], _q, form) => {
        const u = ou(tk, sid);
        this.applyOriginationFields(u, form);
        u.updated = now();
        return { status: 200, body: this.originationUrlJson(u) };
      },
    );
    this.on('DELETE', 'trunking', new RegExp(`${T}/OriginationUrls/${ID}$`), ([tk = '', sid = '']) => {
      ou(tk, sid);
      S.originationUrls = S.originationUrls.filter((u) => u.sid !== sid);
      return { status: 204, body: null };
    });

    // --- trunking v1: CredentialLists / IpAccessControlLists associations
    const association = (
      kind: 'CredentialLists' | 'IpAccessControlLists',
      key: string,
      sidParam: string,
      map: Map<string, string[]>,
      find: (sid: string) => { sid: string; friendlyName: string },
    ) => {
      this.on('GET', 'trunking', new RegExp(`${T}/${kind}$`), ([tk = ''], q) => {
        this.trunk(tk);
        const rows = (map.get(tk) ?? []).map(find);
        return this.v1List(`/v1/Trunks/${tk}/${kind}`, key, rows, q, (r) =>
          this.trunkAssociationJson(tk, kind, r),
        );
      });
      this.on('POST', 'trunking', new RegExp(`${T}/${kind}$`), ([tk = ''], _q, form) => {
        this.trunk(tk);
        const sid = form[sidParam];
        if (sid === undefined)
          throw new HttpError(400, 20001, `Missing required parameter ${sidParam} in the post body`);
        const row = find(sid);
        const list = map.get(tk) ?? [];
        if (list.includes(sid))
          throw new HttpError(400, 20001, `${sid} is already associated with trunk ${tk}`);
        map.set(tk, [...list, sid]);
        return { status: 201, body: this.trunkAssociationJson(tk, kind, row) };
      });
      this.on('DELETE', 'trunking', new RegExp(`${T}/${kind}/${ID}$`), ([tk = '', sid = '']) => {
        const list = map.get(tk) ?? [];
        if (!list.includes(sid))
          throw new HttpError(404, 20404, `The requested resource ${sid} was not found`);
        map.set(
          tk,
          list.filter((s) => s !== sid),
        );
        return { status: 204, body: null };
      });
    };
    association('CredentialLists', 'credential_lists', 'CredentialListSid', S.trunkCredentialLists, (sid) =>
      this.credentialList(sid),
    );
    association(
      'IpAccessControlLists',
      'ip_access_control_lists',
      'IpAccessControlListSid',
      S.trunkIpAccessControlLists,
      (sid) => this.ipAcl(sid),
    );

    // --- trunking v1: PhoneNumbers (a number belongs to at most one trunk; associating moves it)
    this.on('GET', 'trunking', new RegExp(`${T}/PhoneNumbers$`), ([tk = ''], q) => {
      this.trunk(tk);
      const rows = S.incomingNumbers.filter((n) => n.trunkSid === tk);
      return this.v1List(
        `/v1/Trunks/${tk}/PhoneNumbers`,
        'phone_numbers',
        rows,
        q,
        this.trunkPhoneNumberJson,
      );
    });
    this.on('POST', 'trunking', new RegExp(`${T}/PhoneNumbers$`), ([tk = ''], _q, form) => {
      this.trunk(tk);
      const n = S.incomingNumbers.find((x) => x.sid === form.PhoneNumberSid);
      if (n === undefined)
        throw new HttpError(
          404,
          20404,
          `The requested resource PhoneNumber ${form.PhoneNumberSid ?? ''} was not found`,
        );
      n.trunkSid = tk;
      n.updated = now();
      return { status: 201, body: this.trunkPhoneNumberJson(n) };
    });
    this.on('DELETE', 'trunking', new RegExp(`${T}/PhoneNumbers/${ID}$`), ([tk = '', sid = '']) => {
      const n = S.incomingNumbers.find((x) => x.sid === sid && x.trunkSid === tk);
      if (n === undefined) throw new HttpError(404, 20404, `The requested resource ${sid} was not found`);
      n.trunkSid = null;
      return { status: 204, body: null };
    });

    // --- api v2010: SIP CredentialLists + Credentials
    this.on('GET', 'api', new RegExp(`${A}/SIP/CredentialLists\\.json$`), ([ac], q) => {
      this.checkAccount(ac);
      return this.v2010List(
        `${this.accountPath()}/SIP/CredentialLists.json`,
        'credential_lists',
        S.credentialLists,
        q,
        this.credentialListJson,
      );
    });
    this.on('POST', 'api', new RegExp(`${A}/SIP/CredentialLists\\.json$`), ([ac], _q, form) => {
      this.checkAccount(ac);
      const name = form.FriendlyName;
      if (name === undefined || name === '' || name.length > 64)
        throw new HttpError(400, 21240, 'FriendlyName is required and must be at most 64 characters');
      if (S.credentialLists.some((l) => l.friendlyName === name))
        throw new HttpError(400, 21240, `A Credential List with FriendlyName ${name} already exists`);
      const l: CredentialListRow = {
        sid: this.sid('CL'),
        friendlyName: name,
        created: now(),
        updated: now(),
      };
      S.credentialLists.push(l);
      return { status: 201, body: this.credentialListJson(l) };
    });
    this.on('GET', 'api', new RegExp(`${A}/SIP/CredentialLists/${ID}\\.json$`), ([ac, cl = '']) => {
      this.checkAccount(ac);
      return { status: 200, body: this.credentialListJson(this.credentialList(cl)) };
    });
    this.on(
      'GET',
      'api',
      new RegExp(`${A}/SIP/CredentialLists/${ID}/Credentials\\.json$`),
      ([ac, cl = ''], q) => {
        this.checkAccount(ac);
        this.credentialList(cl);
        const rows = S.credentials.filter((c) => c.credentialListSid === cl);
        return this.v2010List(
          `${this.accountPath()}/SIP/CredentialLists/${cl}/Credentials.json`,
          'credentials',
          rows,
          q,
          this.credentialJson,
        );
      },
    );
    this.on(
      'POST',
      'api',
      new RegExp(`${A}/SIP/CredentialLists/${ID}/Credentials\\.json$`),
      ([ac, cl = ''], _q, form) => {
        this.checkAccount(ac);
        this.credentialList(cl);
        const username = form.Username ?? '';
        if (username === '' || username.length > 32)
          throw new HttpError(400, 21240, 'Username is required and must be 32 characters or less');
        if (S.credentials.some((c) => c.credentialListSid === cl && c.username === username))
          throw new HttpError(400, 21240, `Username ${username} already exists in this Credential List`);
        checkPassword(form.Password);
        const c: CredentialRow = {
          sid: this.sid('CR'),
          credentialListSid: cl,
          username,
          password: form.Password ?? '',
          created: now(),
          updated: now(),
        };
        S.credentials.push(c);
        return { status: 201, body: this.credentialJson(c) };
      },
    );
    this.on(
      'POST',
      'api',
      new RegExp(`${A}/SIP/CredentialLists/${ID}/Credentials/${ID}\\.json$`),
      ([ac, cl = '', cr = ''], _q, form) => {
        this.checkAccount(ac);
        const c = S.credentials.find((x) => x.credentialListSid === cl && x.sid === cr);
        if (c === undefined)
          throw new HttpError(404, 20404, `The requested resource Credential ${cr} was not found`);
        if (form.Password !== undefined) {
          checkPassword(form.Password);
          c.password = form.Password;
        }
        c.updated = now();
        return { status: 200, body: this.credentialJson(c) };
      },
    );

    // --- api v2010: SIP IpAccessControlLists + IpAddresses
    this.on('GET', 'api', new RegExp(`${A}/SIP/IpAccessControlLists\\.json$`), ([ac], q) => {
      this.checkAccount(ac);
      return this.v2010List(
        `${this.accountPath()}/SIP/IpAccessControlLists.json`,
        'ip_access_control_lists',
        S.ipAccessControlLists,
        q,
        this.ipAclJson,
      );
    });
    this.on('POST', 'api', new RegExp(`${A}/SIP/IpAccessControlLists\\.json$`), ([ac], _q, form) => {
      this.checkAccount(ac);
      const name = form.FriendlyName;
      if (name === undefined || name === '')
        throw new HttpError(400, 20001, 'Missing required parameter FriendlyName in the post body');
      const l: IpAclRow = { sid: this.sid('AL'), friendlyName: name, created: now(), updated: now() };
      S.ipAccessControlLists.push(l);
      return { status: 201, body: this.ipAclJson(l) };
    });
    this.on(
      'GET',
      'api',
      new RegExp(`${A}/SIP/IpAccessControlLists/${ID}/IpAddresses\\.json$`),
      ([ac, al = ''], q) => {
        this.checkAccount(ac);
        this.ipAcl(al);
        const rows = S.ipAddresses.filter((a) => a.ipAccessControlListSid === al);
        return this.v2010List(
          `${this.accountPath()}/SIP/IpAccessControlLists/${al}/IpAddresses.json`,
          'ip_addresses',
          rows,
          q,
          this.ipAddressJson,
        );
      },
    );
    this.on(
      'POST',
      'api',
      new RegExp(`${A}/SIP/IpAccessControlLists/${ID}/IpAddresses\\.json$`),
      ([ac, al = ''], _q, form) => {
        this.checkAccount(ac);
        this.ipAcl(al);
        if (form.FriendlyName === undefined)
          throw new HttpError(400, 20001, 'Missing required parameter FriendlyName in the post body');
        if (form.IpAddress === undefined || !isIPv4(form.IpAddress))
          throw new HttpError(400, 20001, 'IpAddress must be an IPv4 address');
        const a: IpAddressRow = {
          sid: this.sid('IP'),
          ipAccessControlListSid: al,
          friendlyName: form.FriendlyName,
          ipAddress: form.IpAddress,
          cidrPrefixLength:
            form.CidrPrefixLength === undefined ? 32 : int(form.CidrPrefixLength, 'CidrPrefixLength', 0, 32),
          created: now(),
          updated: now(),
        };
        S.ipAddresses.push(a);
        return { status: 201, body: this.ipAddressJson(a) };
      },
    );

    // --- api v2010: IncomingPhoneNumbers (PhoneNumber filter matches partially, like Twilio's)
    this.on('GET', 'api', new RegExp(`${A}/IncomingPhoneNumbers\\.json$`), ([ac], q) => {
      this.checkAccount(ac);
      const filter = q.PhoneNumber;
      const rows = S.incomingNumbers.filter((n) => filter === undefined || n.phoneNumber.includes(filter));
      return this.v2010List(
        `${this.accountPath()}/IncomingPhoneNumbers.json`,
        'incoming_phone_numbers',
        rows,
        q,
        this.incomingNumberJson,
      );
    });
    this.on('GET', 'api', new RegExp(`${A}/IncomingPhoneNumbers/${ID}\\.json$`), ([ac, pn = '']) => {
      this.checkAccount(ac);
      const n = S.incomingNumbers.find((x) => x.sid === pn);
      if (n === undefined)
        throw new HttpError(404, 20404, `The requested resource IncomingPhoneNumber ${pn} was not found`);
      return { status: 200, body: this.incomingNumberJson(n) };
    });
  }
}

// ---------------------------------------------------------------------------------------------------
// Helpers

function rfc2822(d: Date): string {
  return d.toUTCString().replace('GMT', '+0000');
}

function bool(v: string, name: string): boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new HttpError(400, 20001, `Invalid ${name}: expected true or false`);
}

function int(v: string, name: string, min: number, max: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max)
    throw new HttpError(400, 20001, `Invalid ${name}: expected ${min}-${max}`);
  return n;
}

/** Twilio's credential rules (error 21240): 12+ characters, a digit, mixed case. */
function checkPassword(password: string | undefined): void {
  if (
    password === undefined ||
    password.length < 12 ||
    !/\d/.test(password) ||
    !/[a-z]/.test(password) ||
    !/[A-Z]/.test(password)
  )
    throw new HttpError(
      400,
      21240,
      'Password must be at least 12 characters long, contain a digit and mixed case',
    );
}

type RequestOptions = Parameters<twilio.RequestClient['request']>[0];

/** The real SDK RequestClient, with `https://<product>[.<edge>.<region>].twilio.com/…` rewritten to the fake. */
export class LoopbackTwilioRequestClient extends twilio.RequestClient {
  constructor(private readonly baseUrl: string) {
    super({ keepAlive: false });
  }

  override request<TData>(opts: RequestOptions & { data?: TData }) {
    return super.request<TData>({ ...opts, uri: rewriteTwilioUrl(opts.uri, this.baseUrl) });
  }
}

/** `https://trunking.twilio.com/v1/Trunks?x` → `<base>/trunking/v1/Trunks?x`; throws for any non-Twilio host. */
export function rewriteTwilioUrl(uri: string, baseUrl: string): string {
  const url = new URL(uri);
  const m = /^([a-z0-9-]+)(?:\.[a-z0-9-]+)*\.twilio\.com$/.exec(url.hostname);
  if (url.protocol !== 'https:' || m === null || (m[1] !== 'api' && m[1] !== 'trunking'))
    throw new Error(`test client refuses to send a request to ${url.origin}`);
  return `${baseUrl}/${m[1]}${url.pathname}${url.search}`;
}
