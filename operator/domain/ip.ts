// One spelling per address. The ledger stores and looks up addresses in the
// canonical text form (IPv4 dotted quad, IPv6 as RFC 5952 recommends), so
// `2001:DB8:0:0::5` and `2001:db8::5` are the same address and a typo is a
// usage error rather than a silent "nobody held it".

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Strict dotted quad: four decimal octets 0-255 without leading zeros (`010` could mean octal). */
export function isIpv4(text: string): boolean {
  return V4.test(text);
}

function ipv6Groups(text: string): number[] | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  let head = text;
  const tail: number[] = [];
  // An embedded IPv4 address (`::ffff:192.0.2.1`) is the last two groups.
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.')) {
    const v4 = text.slice(lastColon + 1);
    if (!isIpv4(v4)) return undefined;
    const o = v4.split('.').map(Number) as [number, number, number, number];
    tail.push((o[0] << 8) | o[1], (o[2] << 8) | o[3]);
    head = text.slice(0, lastColon + 1);
    if (!head.endsWith('::')) head = head.slice(0, -1);
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = parse(halves[0] as string);
  const right = halves.length === 2 ? parse(halves[1] as string) : [];
  if (left === undefined || right === undefined) return undefined;
  const given = left.length + right.length + tail.length;
  if (halves.length === 2) {
    if (given > 7) return undefined;
    return [...left, ...new Array<number>(8 - given).fill(0), ...right, ...tail];
  }
  return given === 8 ? [...left, ...tail] : undefined;
}

function formatIpv6(groups: readonly number[]): string {
  // IPv4-mapped addresses keep their dotted tail (RFC 5952 section 5).
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const a = groups[6] as number;
    const b = groups[7] as number;
    return `::ffff:${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
  }
  // The longest run of two or more zero groups becomes `::`; the first on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i += 1; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j += 1;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** The canonical form of an IPv4 or IPv6 address, or undefined when `text` is not one. */
export function canonicalIp(text: string): string | undefined {
  const t = text.trim();
  if (isIpv4(t)) return t;
  if (!t.includes(':')) return undefined;
  const groups = ipv6Groups(t);
  return groups === undefined ? undefined : formatIpv6(groups);
}

/** For stored facts: the canonical form when there is one, else the text as given (kept as evidence, never matched by a valid query). */
export function storedIp(text: string): string {
  return canonicalIp(text) ?? text;
}
