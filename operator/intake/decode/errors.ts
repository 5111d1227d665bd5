// The one error type decoders raise. The consumer dead-letters on it, with
// `reason` as a machine-readable header and `message` for the human reading it.

/**
 * - `empty-body`: nothing but whitespace.
 * - `bad-encoding`: the bytes are not UTF-8.
 * - `not-json`: expected JSON (or nothing recognisable at all) and it does not parse.
 * - `bad-envelope`: JSON, but the oslo envelope or message keys are wrong or missing.
 * - `bad-payload`: a routed event type whose payload (JSON, or the OpenNebula
 *   VM document) lacks or mistypes a field we rely on.
 * - `bad-base64`: an OpenNebula body that is neither XML nor strict base64.
 * - `bad-xml`: XML that is not well-formed (truncated, mismatched tags, bad entities).
 * - `unknown-shape`: well-formed, but not any message shape we know.
 * - `too-large`: the body exceeds the size limit; it was not read.
 * - `field-too-long`: a decoded field exceeds the length limit.
 * - `implausible-time`: the message's own time is malformed (year 0000, 99999,
 *   NaN) or lies outside the accepted window around the receive time; it is
 *   never silently replaced by another time.
 * - `decoder-failure`: the decoder itself failed (a defect); the message is
 *   parked like any other undecodable one rather than retried for ever.
 */
export type DecodeErrorReason =
  | 'empty-body'
  | 'bad-encoding'
  | 'not-json'
  | 'bad-envelope'
  | 'bad-payload'
  | 'bad-base64'
  | 'bad-xml'
  | 'unknown-shape'
  | 'too-large'
  | 'field-too-long'
  | 'implausible-time'
  | 'decoder-failure';

export class DecodeError extends Error {
  override readonly name = 'DecodeError';
  readonly reason: DecodeErrorReason;

  constructor(reason: DecodeErrorReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
  }
}
