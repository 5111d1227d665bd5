// A synthetic but realistically shaped address history for the trace
// benchmark: two years of a busy OpenStack cloud, written straight into the
// ledger's real tables.
//
// Shape, and why:
// - instances arrive as a Poisson stream and live log-normally (median two
//   days, a long tail of months), so most intervals are closed and a few
//   percent are still open;
// - every instance has a fixed IPv4 address in its tenant network; tenants
//   mostly keep the default private ranges, so 10.0.0.x, 192.168.0.x … repeat
//   across thousands of networks (the hard case for "who had 10.0.0.7");
//   within one network an address is only reused once it is free, as Neutron
//   does; a fifth of the networks are dual-stack and add a unique IPv6;
// - about a third of the instances get a floating IP for part of their life,
//   some more than one, from a public pool sized so that each public address
//   carries dozens of successive holders.
import { Rng } from '../lib/rng.ts';

/** Bumped whenever the shape changes, so cached databases are rebuilt. */
export const GENERATOR_VERSION = 1;

export const CLOUD = 'bench';
const DAY = 86_400_000;
export const SPAN_END = Date.parse('2026-06-01T00:00:00Z');
export const SPAN_START = SPAN_END - 730 * DAY;

export const INTERVAL_COLUMNS = ['cloud', 'slot', 'address', 'kind', 'network', 'port', 'mac', 'instance_id', 'project', 'valid_from', 'valid_to', 'opened_by', 'closed_by'] as const;
export const INSTANCE_COLUMNS = ['cloud', 'instance_id', 'name', 'project', 'user_id', 'host', 'image', 'flavor', 'state', 'created_at', 'deleted_at', 'deleted_by', 'first_seen_at', 'last_event_at'] as const;

export type Row = Array<string | number | null>;

export interface Sink {
  interval(row: Row): void;
  instance(row: Row): void;
}

export interface QuerySample {
  address: string;
  from: number;
  to: number | null;
  kind: 'floating' | 'fixed';
}

interface Network {
  id: string;
  project: string;
  base: number;
  hosts: number;
  busyUntil: Float64Array;
  v6: string | null;
}

const hex = (n: number, width: number) => (n >>> 0).toString(16).padStart(width, '0').slice(-width);

function ipv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

const ip = (a: number, b: number, c: number, d: number) => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

/** Ids shaped like UUIDs; the leading counter keeps inserts in key order, which keeps a bulk load fast. */
class Ids {
  readonly #rng: Rng;
  #n = 0;
  constructor(rng: Rng) {
    this.#rng = rng;
  }
  next(): string {
    this.#n += 1;
    const r = this.#rng;
    return `${hex(this.#n, 8)}-${hex(r.int(65536), 4)}-4${hex(r.int(4096), 3)}-${hex(0x8000 | r.int(0x4000), 4)}-${hex(r.int(2 ** 24), 6)}${hex(r.int(2 ** 24), 6)}`;
  }
}

/** Reservoir sampling: a uniform sample of rows without knowing the count in advance. */
class Reservoir {
  readonly items: QuerySample[] = [];
  #seen = 0;
  readonly #cap: number;
  readonly #rng: Rng;
  constructor(cap: number, rng: Rng) {
    this.#cap = cap;
    this.#rng = rng;
  }
  offer(s: QuerySample): void {
    this.#seen += 1;
    if (this.items.length < this.#cap) this.items.push(s);
    else {
      const j = this.#rng.int(this.#seen);
      if (j < this.#cap) this.items[j] = s;
    }
  }
}

export interface Generated {
  intervals: number;
  instances: number;
  networks: number;
  publicAddresses: number;
  openIntervals: number;
  floatingIntervals: number;
  samples: { floating: QuerySample[]; fixed: QuerySample[] };
}

/**
 * Writes exactly `size` intervals (and their instances) to the sink, in time
 * order. Yields the count done every 64 Ki intervals so that an asynchronous
 * sink can flush before generation goes on.
 */
export function* generate(size: number, sink: Sink): Generator<number, Generated> {
  const rng = new Rng(0x5eed + size);
  const sampleRng = new Rng(0xa11ce);
  const ids = new Ids(new Rng(7 + size));
  const floatingSamples = new Reservoir(20_000, sampleRng);
  const fixedSamples = new Reservoir(20_000, sampleRng);

  const networkCount = Math.max(50, Math.round(size / 2000));
  const projects = Array.from({ length: Math.max(20, Math.round(networkCount * 0.6)) }, () => ids.next().replace(/-/g, ''));
  const users = Array.from({ length: projects.length * 3 }, () => ids.next().replace(/-/g, ''));
  const hosts = Array.from({ length: Math.max(20, Math.round(size / 50_000)) }, (_, i) => `cmp${String(i).padStart(4, '0')}.cloud.example.org`);
  const images = Array.from({ length: 60 }, () => ids.next());
  const flavors = ['m1.tiny', 'm1.small', 'm1.medium', 'm1.large', 'm1.xlarge', 'g1.gpu'];

  // Most tenants keep the default ranges; the rest have their own.
  const shared = [
    { base: ip(10, 0, 0, 0), share: 0.4 },
    { base: ip(192, 168, 0, 0), share: 0.1 },
    { base: ip(172, 16, 0, 0), share: 0.05 },
    { base: ip(10, 0, 1, 0), share: 0.05 },
  ];
  const networks: Network[] = [];
  const weights: number[] = [];
  for (let i = 0; i < networkCount; i++) {
    const r = rng.next();
    let acc = 0;
    let base: number | undefined;
    for (const s of shared) {
      acc += s.share;
      if (r < acc) {
        base = s.base;
        break;
      }
    }
    const own = base === undefined;
    const weight = rng.logNormal(1, 1.2);
    const hostsInNet = own && weight > 4 ? 1020 : 250;
    base ??= ip(10, 1 + rng.int(250), rng.int(64) * 4, 0);
    networks.push({
      id: ids.next(), project: rng.pick(projects), base, hosts: hostsInNet, busyUntil: new Float64Array(hostsInNet),
      v6: rng.chance(0.2) ? `2001:db8:${hex(i >> 16, 1)}${hex(i, 4)}` : null,
    });
    weights.push(Math.min(weight, 40));
  }
  const cumulative: number[] = [];
  weights.reduce((s, w, i) => (cumulative[i] = s + w), 0);
  const totalWeight = cumulative.at(-1) ?? 1;
  const pickNetwork = (): Network => {
    const x = rng.next() * totalWeight;
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cumulative[mid] as number) < x) lo = mid + 1;
      else hi = mid;
    }
    return networks[lo] as Network;
  };

  const publicCount = Math.max(1024, Math.round(size / 200));
  const publicBusy = new Float64Array(publicCount);
  const publicAddress = (i: number) => ipv4(ip(188, 184, 0, 0) + i);

  // ~1.65 intervals per instance: spread arrivals so the span is covered once the size is reached.
  const expectedInstances = size / 1.65;
  const meanGap = (SPAN_END - SPAN_START) / expectedInstances;

  let t = SPAN_START;
  let intervals = 0;
  let instances = 0;
  let open = 0;
  let floating = 0;
  const emit = (row: Row) => {
    if (intervals >= size) return;
    sink.interval(row);
    intervals += 1;
    if (row[10] === null) open += 1;
  };

  let reported = 0;
  while (intervals < size) {
    if (intervals - reported >= 65_536) {
      reported = intervals;
      yield intervals;
    }
    t += -Math.log(Math.max(1e-12, rng.next())) * meanGap;
    const life = Math.min(rng.logNormal(2 * DAY, 1.8), 3 * 365 * DAY);
    const end = t + life;
    const alive = end >= SPAN_END;
    const to = alive ? null : Math.round(end);
    const from = Math.round(t);
    const id = ids.next();
    const net = pickNetwork();
    const project = net.project;
    const port = ids.next();
    const mac = `fa:16:3e:${hex(rng.int(256), 2)}:${hex(rng.int(256), 2)}:${hex(rng.int(256), 2)}`;
    const createMsg = ids.next();
    const deleteMsg = alive ? null : ids.next();
    instances += 1;
    sink.instance([
      CLOUD, id, `vm-${instances}`, project, rng.pick(users), rng.pick(hosts), rng.pick(images), rng.pick(flavors),
      alive ? 'active' : 'deleted', from, to, alive ? null : rng.pick(users), from, to ?? from,
    ]);

    // Neutron hands out a free address of the subnet, chosen at random.
    let host = -1;
    for (let k = 0; k < 16; k++) {
      const h = rng.int(net.hosts);
      if ((net.busyUntil[h] as number) <= t) {
        host = h;
        break;
      }
    }
    if (host < 0) host = rng.int(net.hosts);
    net.busyUntil[host] = alive ? Number.POSITIVE_INFINITY : end;
    const v4 = ipv4(net.base + 2 + host);
    emit([CLOUD, `port:${port}|${v4}`, v4, 'fixed', net.id, port, mac, id, project, from, to, createMsg, deleteMsg]);
    fixedSamples.offer({ address: v4, from, to, kind: 'fixed' });
    if (net.v6 !== null) {
      const v6 = `${net.v6}::f816:3eff:${mac.slice(9, 11)}${mac.slice(12, 14)}:${mac.slice(15, 17)}${hex(rng.int(256), 2)}`;
      emit([CLOUD, `port:${port}|${v6}`, v6, 'fixed', net.id, port, mac, id, project, from, to, createMsg, deleteMsg]);
    }

    if (rng.chance(0.3)) {
      // One to three associations in the instance's life; a later one can be a different address (a move).
      let cursor = from + Math.round(rng.next() * Math.min(life, DAY) * 0.1);
      const rounds = 1 + (rng.chance(0.35) ? 1 : 0) + (rng.chance(0.15) ? 1 : 0);
      for (let a = 0; a < rounds && cursor < end && cursor < SPAN_END; a++) {
        const remaining = (alive ? SPAN_END : end) - cursor;
        const lastOne = a === rounds - 1;
        const stop = lastOne && rng.chance(0.7) ? (alive ? null : Math.round(end)) : Math.round(cursor + remaining * rng.next());
        let slot = -1;
        for (let k = 0; k < 8; k++) {
          const i = rng.int(publicCount);
          if ((publicBusy[i] as number) <= cursor) {
            slot = i;
            break;
          }
        }
        if (slot < 0) break;
        publicBusy[slot] = stop ?? Number.POSITIVE_INFINITY;
        const address = publicAddress(slot);
        const fip = `fip:${hex(slot, 8)}-0000-4000-8000-${hex(slot * 2654435761, 8)}0000`;
        emit([CLOUD, fip, address, 'floating', 'public', port, mac, id, project, cursor, stop, ids.next(), stop === null ? null : ids.next()]);
        floating += 1;
        floatingSamples.offer({ address, from: cursor, to: stop, kind: 'floating' });
        if (stop === null) break;
        cursor = stop + Math.round(rng.logNormal(600_000, 1.5));
      }
    }
  }
  return {
    intervals, instances, networks: networkCount, publicAddresses: publicCount, openIntervals: open, floatingIntervals: floating,
    samples: { floating: floatingSamples.items, fixed: fixedSamples.items },
  };
}

export interface TraceQuery {
  address: string;
  at: number;
  kind: 'floating' | 'fixed';
}

/**
 * The questions an investigator asks: mostly public addresses (abuse reports
 * name them), some private ones (from internal logs); usually at a time when
 * someone held the address, sometimes not.
 */
export function querySet(samples: Generated['samples'], count: number, seed = 4242): TraceQuery[] {
  const rng = new Rng(seed);
  const out: TraceQuery[] = [];
  for (let i = 0; i < count; i++) {
    const pool = rng.chance(0.7) ? samples.floating : samples.fixed;
    const s = rng.pick(pool);
    const at = rng.chance(0.8)
      ? s.from + Math.floor(rng.next() * Math.max(1, (s.to ?? SPAN_END) - s.from))
      : SPAN_START + Math.floor(rng.next() * (SPAN_END - SPAN_START));
    out.push({ address: s.address, at, kind: s.kind });
  }
  return out;
}
