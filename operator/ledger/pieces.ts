// Splits the rows or keys of one multi-row statement into pieces whose
// lengths are powers of two. Every distinct length is a distinct statement
// text, and SQLite keeps a prepared statement per text (sqlite-driver.ts):
// with lengths that vary from batch to batch, the apply path made a new text
// almost every batch, the statement cache churned, and each evicted statement
// held its native memory (a few hundred KB for a multi-row insert) until V8
// happened to collect its wrapper. With power-of-two pieces a table has at
// most log2(max) + 1 texts, which stay prepared; a list costs as many
// statements as its length has one-bits.

/**
 * `xs` in order, as pieces of 2^k items each, the longest first, none longer
 * than `max` (rounded down to a power of two). `max` Infinity: one piece, for
 * statements whose text does not depend on the length (PostgreSQL arrays).
 */
export function pieces<T>(xs: readonly T[], max: number): T[][] {
  if (!(max >= 1)) throw new RangeError(`pieces: max must be at least 1, got ${max}`);
  if (max === Infinity) return xs.length === 0 ? [] : [[...xs]];
  const top = 2 ** Math.floor(Math.log2(max));
  const out: T[][] = [];
  let i = 0;
  while (i < xs.length) {
    const left = xs.length - i;
    const size = Math.min(top, 2 ** Math.floor(Math.log2(left)));
    out.push(xs.slice(i, i + size));
    i += size;
  }
  return out;
}
