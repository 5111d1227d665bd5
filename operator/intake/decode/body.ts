// Bytes to text, strict base64, content hashes: the byte-level chores shared
// by every decoder.
import { hash } from 'node:crypto';
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

/** Whether the bytes begin with UTF-8's byte order mark, which bodyText drops. */
export const hasBom = (bytes: Uint8Array): boolean => bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;

/** RFC 4648 alphabet (no URL-safe variant). */
function isBase64Char(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2f;
}

/**
 * One pass, constant stack: a length that is a multiple of four, the alphabet
 * everywhere, and `=` only as one or two final padding characters. (A regular
 * expression with a repeated group here backtracked through the whole body
 * and overflowed the stack on bodies of a few megabytes.)
 */
export function isStrictBase64(text: string): boolean {
  const n = text.length;
  if (n === 0 || n % 4 !== 0) return false;
  let padding = 0;
  if (text.charCodeAt(n - 1) === 0x3d) padding = text.charCodeAt(n - 2) === 0x3d ? 2 : 1;
  for (let i = 0; i < n - padding; i++) if (!isBase64Char(text.charCodeAt(i))) return false;
  return true;
}

/**
 * Strict base64 (RFC 4648 alphabet, padding required, no line breaks inside),
 * optionally surrounded by whitespace. Returns undefined when the text is not
 * that; Buffer's own decoder would quietly skip junk instead.
 */
export function decodeStrictBase64(text: string): Uint8Array | undefined {
  const compact = text.trim();
  if (!isStrictBase64(compact)) return undefined;
  const bytes = Buffer.from(compact, 'base64');
  // Non-zero bits after the last full byte mean a hand-made or corrupted string.
  if (bytes.toString('base64') !== compact) return undefined;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex');
}
