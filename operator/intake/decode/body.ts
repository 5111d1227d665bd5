// Bytes to text, strict base64, content hashes: the byte-level chores shared
// by every decoder.
import { createHash } from 'node:crypto';
import { DecodeError } from './errors.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Strict UTF-8 (a replacement character would silently alter evidence); a leading BOM is dropped. */
export function bodyText(body: Uint8Array | string): string {
  if (typeof body === 'string') return body.startsWith('\uFEFF') ? body.slice(1) : body;
  try {
    return utf8.decode(body);
  } catch (err) {
    throw new DecodeError('bad-encoding', 'body is not valid UTF-8', { cause: err });
  }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Strict base64 (RFC 4648 alphabet, padding required, no line breaks inside),
 * optionally surrounded by whitespace. Returns undefined when the text is not
 * that; Buffer's own decoder would quietly skip junk instead.
 */
export function decodeStrictBase64(text: string): Uint8Array | undefined {
  const compact = text.trim();
  if (compact === '' || !BASE64.test(compact)) return undefined;
  const bytes = Buffer.from(compact, 'base64');
  // Non-zero bits after the last full byte mean a hand-made or corrupted string.
  if (bytes.toString('base64') !== compact) return undefined;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
