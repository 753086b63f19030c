/** A refused call-control request; `code` is the contract the HTTP API maps to a status. */
export class CallControlError extends Error {
  override readonly name = 'CallControlError';
  constructor(
    readonly code: 'busy' | 'not_configured' | 'not_found' | 'invalid_state' | 'destination_not_allowed',
    message: string,
  ) {
    super(message);
  }
}
