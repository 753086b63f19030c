/**
 * Twilio Elastic SIP Trunking signalling addresses, one /30 per edge (twilio.com/docs/sip-trunking/
 * ip-addresses, checked 2026-11). `SIP_ALLOWED_SOURCES=twilio` expands to these; check Twilio's page
 * before deploying, since edges are added over time.
 */
export const TWILIO_SIGNALLING_NETWORKS: readonly string[] = [
  '54.172.60.0/30', // us1 Virginia
  '54.244.51.0/30', // us2 Oregon
  '54.171.127.192/30', // ie1 Dublin
  '35.156.191.128/30', // de1 Frankfurt
  '54.65.63.192/30', // jp1 Tokyo
  '54.169.127.128/30', // sg1 Singapore
  '54.252.254.64/30', // au1 Sydney
  '177.71.206.192/30', // br1 São Paulo
];

/** Headers Twilio adds to origination INVITEs that identify the call in Twilio's console and API. */
export const TWILIO_HEADERS = { callSid: 'X-Twilio-CallSid', accountSid: 'X-Twilio-AccountSid' } as const;
