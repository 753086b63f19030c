// The narrow port `voxgate twilio setup` needs from Twilio, and its adapter over the official `twilio` SDK.
// The setup logic only sees plain records, so it can be planned and tested without the SDK's object model;
// the adapter is the one place that knows the SDK's resource paths (../shared/reference/sip-stack.md §3.7).
import twilio from 'twilio';

export type TransferMode = 'disable-all' | 'enable-all' | 'sip-only';
export type TransferCallerId = 'from-transferee' | 'from-transferor';

/** Trunk fields voxgate manages (everything else on the trunk is left alone). */
export interface TrunkFields {
  friendlyName: string;
  transferMode: TransferMode;
  transferCallerId: TransferCallerId;
  /** Secure trunking = TLS + SRTP only; voxgate's RTP engine has no SRTP, so it must stay false. */
  secure: boolean;
}

export interface TrunkRecord extends TrunkFields {
  sid: string;
  domainName: string;
}

export interface OriginationUrlFields {
  friendlyName: string;
  sipUrl: string;
  priority: number;
  weight: number;
  enabled: boolean;
}

export interface OriginationUrlRecord extends OriginationUrlFields {
  sid: string;
}

export interface NamedRecord {
  sid: string;
  friendlyName: string;
}

export interface CredentialRecord {
  sid: string;
  username: string;
}

export interface IpAddressFields {
  friendlyName: string;
  ipAddress: string;
  cidrPrefixLength: number;
}

export interface IpAddressRecord extends IpAddressFields {
  sid: string;
}

export interface PhoneNumberRecord {
  sid: string;
  phoneNumber: string;
  /** The trunk the number is attached to, or null. */
  trunkSid: string | null;
}

/** Everything `twilio setup` reads or writes. Lists return every page. */
export interface TwilioLike {
  readonly accountSid: string;
  listTrunks(): Promise<TrunkRecord[]>;
  createTrunk(fields: TrunkFields & { domainName: string }): Promise<TrunkRecord>;
  updateTrunk(trunkSid: string, changes: Partial<TrunkFields>): Promise<TrunkRecord>;

  listOriginationUrls(trunkSid: string): Promise<OriginationUrlRecord[]>;
  createOriginationUrl(trunkSid: string, fields: OriginationUrlFields): Promise<OriginationUrlRecord>;
  updateOriginationUrl(
    trunkSid: string,
    sid: string,
    changes: Partial<OriginationUrlFields>,
  ): Promise<OriginationUrlRecord>;

  listCredentialLists(): Promise<NamedRecord[]>;
  createCredentialList(friendlyName: string): Promise<NamedRecord>;
  listCredentials(credentialListSid: string): Promise<CredentialRecord[]>;
  createCredential(credentialListSid: string, username: string, password: string): Promise<CredentialRecord>;
  updateCredentialPassword(credentialListSid: string, credentialSid: string, password: string): Promise<void>;
  /** SIDs (CL…) of the credential lists associated with the trunk. */
  listTrunkCredentialLists(trunkSid: string): Promise<string[]>;
  associateCredentialList(trunkSid: string, credentialListSid: string): Promise<void>;

  listIpAccessControlLists(): Promise<NamedRecord[]>;
  createIpAccessControlList(friendlyName: string): Promise<NamedRecord>;
  listIpAddresses(ipAccessControlListSid: string): Promise<IpAddressRecord[]>;
  createIpAddress(ipAccessControlListSid: string, fields: IpAddressFields): Promise<IpAddressRecord>;
  /** SIDs (AL…) of the IP access control lists associated with the trunk. */
  listTrunkIpAccessControlLists(trunkSid: string): Promise<string[]>;
  associateIpAccessControlList(trunkSid: string, ipAccessControlListSid: string): Promise<void>;

  /** IncomingPhoneNumbers of the account whose number is exactly `phoneNumber` (E.164). */
  findIncomingPhoneNumbers(phoneNumber: string): Promise<PhoneNumberRecord[]>;
  /** SIDs (PN…) of the phone numbers associated with the trunk. */
  listTrunkPhoneNumbers(trunkSid: string): Promise<string[]>;
  associatePhoneNumber(trunkSid: string, phoneNumberSid: string): Promise<void>;
}

export interface TwilioClientOptions {
  /** The SDK's own HTTP seam (a `twilio.RequestClient`); tests pass one that targets a local fake. */
  httpClient?: twilio.RequestClient;
}

const asTransferMode = (v: string): TransferMode =>
  v === 'enable-all' || v === 'sip-only' ? v : 'disable-all';
const asTransferCallerId = (v: string): TransferCallerId =>
  v === 'from-transferor' ? 'from-transferor' : 'from-transferee';

interface SdkTrunk {
  sid: string;
  domainName: string | null;
  friendlyName: string | null;
  transferMode: string | null;
  transferCallerId: string | null;
  secure: boolean | null;
}

function toTrunk(t: SdkTrunk): TrunkRecord {
  return {
    sid: t.sid,
    domainName: t.domainName ?? '',
    friendlyName: t.friendlyName ?? '',
    transferMode: asTransferMode(t.transferMode ?? ''),
    transferCallerId: asTransferCallerId(t.transferCallerId ?? ''),
    secure: t.secure === true,
  };
}

function toOriginationUrl(u: OriginationUrlRecord): OriginationUrlRecord {
  const { sid, friendlyName, sipUrl, priority, weight, enabled } = u;
  return { sid, friendlyName: friendlyName ?? '', sipUrl: sipUrl ?? '', priority, weight, enabled };
}

const named = (r: { sid: string; friendlyName: string | null }): NamedRecord => ({
  sid: r.sid,
  friendlyName: r.friendlyName ?? '',
});

/** Build the port over the official SDK: `twilio(accountSid, authToken)`; 429s are retried with back-off. */
export function createTwilioClient(
  accountSid: string,
  authToken: string,
  options: TwilioClientOptions = {},
): TwilioLike {
  const sdk = twilio(accountSid, authToken, {
    autoRetry: true,
    ...(options.httpClient !== undefined ? { httpClient: options.httpClient } : {}),
  });
  const trunks = sdk.trunking.v1.trunks;
  const sip = sdk.api.v2010.account.sip;

  return {
    accountSid,
    listTrunks: async () => (await trunks.list()).map(toTrunk),
    createTrunk: async (fields) => toTrunk(await trunks.create(fields)),
    updateTrunk: async (trunkSid, changes) => toTrunk(await trunks(trunkSid).update(changes)),

    listOriginationUrls: async (trunkSid) =>
      (await trunks(trunkSid).originationUrls.list()).map(toOriginationUrl),
    createOriginationUrl: async (trunkSid, fields) =>
      toOriginationUrl(await trunks(trunkSid).originationUrls.create(fields)),
    updateOriginationUrl: async (trunkSid, sid, changes) =>
      toOriginationUrl(await trunks(trunkSid).originationUrls(sid).update(changes)),

    listCredentialLists: async () => (await sip.credentialLists.list()).map(named),
    createCredentialList: async (friendlyName) => named(await sip.credentialLists.create({ friendlyName })),
    listCredentials: async (credentialListSid) =>
      (await sip.credentialLists(credentialListSid).credentials.list()).map(({ sid, username }) => ({
        sid,
        username,
      })),
    createCredential: async (credentialListSid, username, password) => {
      const c = await sip.credentialLists(credentialListSid).credentials.create({ username, password });
      return { sid: c.sid, username: c.username };
    },
    updateCredentialPassword: async (credentialListSid, credentialSid, password) => {
      await sip.credentialLists(credentialListSid).credentials(credentialSid).update({ password });
    },
    listTrunkCredentialLists: async (trunkSid) =>
      (await trunks(trunkSid).credentialsLists.list()).map((c) => c.sid),
    associateCredentialList: async (trunkSid, credentialListSid) => {
      await trunks(trunkSid).credentialsLists.create({ credentialListSid });
    },

    listIpAccessControlLists: async () => (await sip.ipAccessControlLists.list()).map(named),
    createIpAccessControlList: async (friendlyName) =>
      named(await sip.ipAccessControlLists.create({ friendlyName })),
    listIpAddresses: async (aclSid) =>
      (await sip.ipAccessControlLists(aclSid).ipAddresses.list()).map((a) => ({
        sid: a.sid,
        friendlyName: a.friendlyName ?? '',
        ipAddress: a.ipAddress,
        cidrPrefixLength: a.cidrPrefixLength ?? 32,
      })),
    createIpAddress: async (aclSid, fields) => {
      const a = await sip.ipAccessControlLists(aclSid).ipAddresses.create(fields);
      return {
        sid: a.sid,
        friendlyName: a.friendlyName ?? '',
        ipAddress: a.ipAddress,
        cidrPrefixLength: a.cidrPrefixLength ?? 32,
      };
    },
    listTrunkIpAccessControlLists: async (trunkSid) =>
      (await trunks(trunkSid).ipAccessControlLists.list()).map((a) => a.sid),
    associateIpAccessControlList: async (trunkSid, ipAccessControlListSid) => {
      await trunks(trunkSid).ipAccessControlLists.create({ ipAccessControlListSid });
    },

    findIncomingPhoneNumbers: async (phoneNumber) =>
      (await sdk.incomingPhoneNumbers.list({ phoneNumber }))
        .filter((n) => n.phoneNumber === phoneNumber)
        .map((n) => ({ sid: n.sid, phoneNumber: n.phoneNumber, trunkSid: n.trunkSid || null })),
    listTrunkPhoneNumbers: async (trunkSid) => (await trunks(trunkSid).phoneNumbers.list()).map((p) => p.sid),
    associatePhoneNumber: async (trunkSid, phoneNumberSid) => {
      await trunks(trunkSid).phoneNumbers.create({ phoneNumberSid });
    },
  };
}
