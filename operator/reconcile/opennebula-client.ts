// A thin OpenNebula XML-RPC client for what reconciliation reads: the VM pool
// (`one.vmpool.info`), in pages. The response envelope and each VM document
// are parsed strictly (the intake's own XML reader and VM decoder, which is why
// it lives here and not among the clients of clouds/), never trusted; calls
// time out and are retried on transport errors and 5xx.
import { z } from 'zod';
import type { ListedOneVm, OpenNebulaInventory } from '../domain/inventory.ts';
import { childrenNamed, firstChild, parseXml, type XmlElement } from '../intake/decode/xml.ts';
import { decodeVm } from '../intake/decode/opennebula-vm.ts';

export class OpenNebulaError extends Error {
  override name = 'OpenNebulaError';
  readonly retriable: boolean;
  constructor(message: string, retriable = false) {
    super(message);
    this.retriable = retriable;
  }
}

export interface OpenNebulaOptions {
  /** oned's XML-RPC endpoint, e.g. http://one.example.org:2633/RPC2 */
  url: string;
  /** `user:password` (or `user:token`), as ONE_AUTH holds it. */
  session: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
  /** VMs per page (default 500). */
  pageSize?: number;
  attempts?: number;
  sleep?: (ms: number) => Promise<void>;
}

/** Pool filter: every VM the session may see (RequestManagerPoolInfoFilter::ALL). */
const ALL = -2;
/** State filter: every state except DONE. */
const ANY_BUT_DONE = -1;
/**
 * Pages are asked by offset (start = offset, end = -size, as oned's paginated
 * pools take them). A VM removed while the listing runs shifts later entries
 * back; pages overlap by up to this many entries (a quarter of a page at
 * most) so that such a shift does not skip a VM (which would wrongly count as
 * gone), and entries are kept in id order.
 */
const OVERLAP = 16;

type Value = { kind: 'string'; value: string } | { kind: 'int'; value: number } | { kind: 'boolean'; value: boolean } | { kind: 'other' };

function valueOf(v: XmlElement): Value {
  const typed = v.children[0];
  if (typed === undefined) return { kind: 'string', value: v.text };
  if (typed.name === 'string') return { kind: 'string', value: typed.text };
  if (typed.name === 'i4' || typed.name === 'int' || typed.name === 'i8') return { kind: 'int', value: Number(typed.text.trim()) };
  if (typed.name === 'boolean') return { kind: 'boolean', value: typed.text.trim() === '1' };
  return { kind: 'other' };
}

const MemberName = z.string();

/** The `[success, result, error code]` triple of a one.* call, or its fault. */
export function parseResponse(body: string): { ok: true; result: string } | { ok: false; error: string } {
  const root = parseXml(body);
  if (root.name !== 'methodResponse') throw new OpenNebulaError(`XML-RPC: expected methodResponse, got ${root.name}`);
  const fault = firstChild(root, 'fault');
  if (fault !== undefined) {
    const members = childrenNamed(firstChild(firstChild(fault, 'value') ?? fault, 'struct') ?? fault, 'member');
    const text = members.map((m) => `${MemberName.parse(firstChild(m, 'name')?.text ?? '')}=${firstChild(m, 'value')?.children[0]?.text ?? firstChild(m, 'value')?.text ?? ''}`).join(' ');
    return { ok: false, error: `fault ${text}` };
  }
  const data = firstChild(firstChild(firstChild(firstChild(firstChild(root, 'params') ?? root, 'param') ?? root, 'value') ?? root, 'array') ?? root, 'data');
  const values = data === undefined ? [] : childrenNamed(data, 'value').map(valueOf);
  const [success, result] = values;
  if (success?.kind !== 'boolean') throw new OpenNebulaError('XML-RPC: the response is not a [success, result, code] array');
  if (result?.kind !== 'string') throw new OpenNebulaError('XML-RPC: the result is not a string');
  return success.value ? { ok: true, result: result.value } : { ok: false, error: result.value };
}

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function methodCall(method: string, params: ReadonlyArray<string | number>): string {
  const p = params.map((v) => `<param><value>${typeof v === 'number' ? `<i4>${v}</i4>` : `<string>${escape(v)}</string>`}</value></param>`).join('');
  return `<?xml version="1.0"?><methodCall><methodName>${escape(method)}</methodName><params>${p}</params></methodCall>`;
}

/** A `<VM>` of the pool as the domain lists it. */
export function listedVm(e: XmlElement): ListedOneVm {
  const { vm } = decodeVm(e, undefined, []);
  const lcm = vm.lcmState.name ?? String(vm.lcmState.code);
  return {
    id: vm.id, name: vm.name, user: vm.uname, group: vm.gname, host: vm.host, createdAt: vm.stime,
    state: vm.state.name === 'ACTIVE' ? `ACTIVE/${lcm}` : vm.state.name ?? String(vm.state.code), done: vm.state.code === 6,
    nics: vm.nics.map((n) => ({
      nicId: n.nicId, mac: n.mac, network: n.network ?? (n.networkId === undefined ? undefined : String(n.networkId)), target: n.target,
      addresses: [n.ip, n.ip6, n.ip6Global, n.ip6Ula].filter((a): a is string => a !== undefined),
    })),
  };
}

export class OpenNebulaClient implements OpenNebulaInventory {
  readonly type = 'opennebula' as const;
  readonly #o: OpenNebulaOptions;

  constructor(o: OpenNebulaOptions) {
    this.#o = o;
  }

  async #call(method: string, params: ReadonlyArray<string | number>): Promise<string> {
    const attempts = Math.max(1, this.#o.attempts ?? 3);
    const sleep = this.#o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    let last: OpenNebulaError | undefined;
    for (let attempt = 1; attempt <= attempts; attempt += 1) {
      if (attempt > 1) await sleep(Math.min(10_000, 250 * 2 ** (attempt - 2)));
      let res: Response;
      try {
        res = await (this.#o.fetch ?? fetch)(this.#o.url, {
          method: 'POST', headers: { 'content-type': 'text/xml' }, body: methodCall(method, [this.#o.session, ...params]),
          signal: AbortSignal.timeout(this.#o.timeoutMs ?? 30_000),
        });
      } catch (err) {
        last = new OpenNebulaError(`${method}: ${err instanceof Error ? err.message : String(err)}`, true);
        continue;
      }
      if (res.status >= 500 || res.status === 429) { last = new OpenNebulaError(`${method}: HTTP ${res.status}`, true); continue; }
      if (!res.ok) throw new OpenNebulaError(`${method}: HTTP ${res.status}`);
      const r = parseResponse(await res.text());
      if (!r.ok) throw new OpenNebulaError(`${method}: ${r.error}`);
      return r.result;
    }
    throw last ?? new OpenNebulaError(`${method}: failed`);
  }

  async *vms(): AsyncGenerator<ListedOneVm[]> {
    const size = Math.max(8, this.#o.pageSize ?? 500);
    const overlap = Math.min(OVERLAP, Math.floor(size / 4));
    let offset = 0;
    let lastId = -1;
    for (;;) {
      const pool = parseXml(await this.#call('one.vmpool.info', [ALL, offset, -size, ANY_BUT_DONE]));
      if (pool.name !== 'VM_POOL') throw new OpenNebulaError(`one.vmpool.info: expected VM_POOL, got ${pool.name}`);
      const entries = childrenNamed(pool, 'VM');
      const page = entries.map(listedVm).filter((v) => v.id > lastId).sort((a, b) => a.id - b.id);
      if (page.length > 0) {
        lastId = page.at(-1)?.id ?? lastId;
        yield page;
      }
      if (entries.length < size) return;
      offset += size - overlap;
    }
  }
}
