/** Status code of a message/sipfrag body ("SIP/2.0 180 Ringing"), or undefined if it is not one. */
export function sipfragStatus(body: string): number | undefined {
  const match = /^\s*SIP\/2\.0\s+(\d{3})\b/.exec(body);
  return match ? Number(match[1]) : undefined;
}

/** True for a Subscription-State header that ends the implicit REFER subscription. */
export function isTerminated(subscriptionState: string | undefined): boolean {
  return subscriptionState !== undefined && /^\s*terminated\b/i.test(subscriptionState);
}
