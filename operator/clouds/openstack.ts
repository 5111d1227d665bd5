// A thin OpenStack client: Keystone v3 application-credential tokens, the
// two Nova calls capture needs, the paged listings reconciliation reads
// (Nova servers, Neutron ports, floating IPs and routers), and Keystone's
// user and project names. Responses are
// parsed, not trusted; reads are retried on transport errors, 429 and 5xx.
import { z } from 'zod';
import type { ListedFloatingIp, ListedPort, ListedRouter, ListedServer, OpenStackInventory } from '../domain/inventory.ts';
import type { CloudApi, IdentityDirectory, IdentityKind } from '../domain/cloud-api.ts';

export class OpenStackError extends Error {
  override name = 'OpenStackError';
  readonly status: number | undefined;
  constructor(message: string, status?: number) {
    super(message);
    this.status = status;
  }
}

const TokenBody = z.object({
  token: z.object({
    expires_at: z.string(),
    catalog: z.array(z.object({
      type: z.string(),
      endpoints: z.array(z.object({ interface: z.string(), region: z.string().nullish(), url: z.string() })),
    })).default([]),
  }),
});

const Time = z.string().nullish().transform((v) => {
  if (v === null || v === undefined || v === '') return undefined;
  // Neutron and Nova write UTC without a zone (2026-05-01T10:00:00 or with Z).
  const t = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? v : `${v}Z`);
  return Number.isNaN(t) ? undefined : new Date(t);
});
const Str = z.string().nullish().transform((v) => (v === null || v === '' ? undefined : v));

const ServersPage = z.object({
  servers: z.array(z.object({
    id: z.string(),
    name: Str,
    tenant_id: Str,
    user_id: Str,
    status: Str,
    created: Time,
    'OS-EXT-SRV-ATTR:host': Str,
    'OS-EXT-STS:vm_state': Str,
    addresses: z.record(z.string(), z.array(z.object({
      addr: z.string(),
      'OS-EXT-IPS:type': z.enum(['fixed', 'floating']).optional(),
      'OS-EXT-IPS-MAC:mac_addr': Str,
    }).loose())).default({}),
  }).loose()),
});

const PortsPage = z.object({
  ports: z.array(z.object({
    id: z.string(), device_id: Str, device_owner: Str, network_id: Str, mac_address: Str, project_id: Str, tenant_id: Str, created_at: Time,
    fixed_ips: z.array(z.object({ ip_address: z.string() }).loose()).default([]),
  }).loose()),
});

const FloatingIpsPage = z.object({
  floatingips: z.array(z.object({
    id: z.string(), floating_ip_address: z.string(), port_id: z.string().nullable(), floating_network_id: Str, project_id: Str, tenant_id: Str, created_at: Time,
    port_details: z.object({ device_id: Str }).loose().nullish(),
  }).loose()),
});

const RoutersPage = z.object({
  routers: z.array(z.object({
    id: z.string(), name: Str, project_id: Str, tenant_id: Str, created_at: Time,
    external_gateway_info: z.object({ network_id: Str, external_fixed_ips: z.array(z.object({ ip_address: z.string() }).loose()).default([]) }).loose().nullish(),
  }).loose()),
});

const UserBody = z.object({ user: z.object({ id: z.string(), name: z.string() }).loose() });
const ProjectBody = z.object({ project: z.object({ id: z.string(), name: z.string() }).loose() });

const ServerBody = z.object({
  server: z.object({ id: z.string(), status: z.string(), name: z.string().optional(), 'OS-EXT-STS:vm_state': z.string().optional() }).loose(),
});

export interface OpenStackOptions {
  authUrl: string;
  applicationCredentialId: string;
  applicationCredentialSecret: string;
  region?: string | undefined;
  interface?: 'public' | 'internal' | 'admin' | undefined;
  fetch?: typeof fetch;
  timeoutMs?: number;
  /** Items per page of a listing (default 500). */
  pageSize?: number;
  /** Attempts of a read before it fails (default 3), with backoff between them. */
  attempts?: number;
  /** Waits between attempts (tests pass one that does not sleep). */
  sleep?: (ms: number) => Promise<void>;
}

// The port is declared beside the domain; re-exported for the callers of this client.
export type { CloudApi } from '../domain/cloud-api.ts';

type Endpoints = { compute: string; network: string | undefined; identity: string };

export class OpenStackClient implements CloudApi, OpenStackInventory, IdentityDirectory {
  readonly type = 'openstack' as const;
  readonly #o: OpenStackOptions;
  readonly #fetch: typeof fetch;
  #token: ({ value: string; expiresAt: number } & Endpoints) | undefined;

  constructor(o: OpenStackOptions) {
    this.#o = o;
    this.#fetch = o.fetch ?? fetch;
  }

  async #request(url: string, init: RequestInit): Promise<Response> {
    try {
      return await this.#fetch(url, { ...init, signal: AbortSignal.timeout(this.#o.timeoutMs ?? 30_000) });
    } catch (err) {
      throw new OpenStackError(`${init.method ?? 'GET'} ${url}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  async #auth(): Promise<{ value: string } & Endpoints> {
    // Renew a minute early so a long call does not run into expiry.
    if (this.#token !== undefined && this.#token.expiresAt - 60_000 > Date.now()) return this.#token;
    const res = await this.#request(`${this.#o.authUrl.replace(/\/$/, '')}/auth/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ auth: { identity: { methods: ['application_credential'], application_credential: { id: this.#o.applicationCredentialId, secret: this.#o.applicationCredentialSecret } } } }),
    });
    if (res.status !== 201) throw new OpenStackError(`Keystone refused the application credential (HTTP ${res.status})`, res.status);
    const token = res.headers.get('x-subject-token');
    if (token === null) throw new OpenStackError('Keystone answered without an X-Subject-Token');
    const body = TokenBody.safeParse(await res.json());
    if (!body.success) throw new OpenStackError(`unexpected Keystone token body: ${body.error.issues[0]?.message ?? ''}`);
    const iface = this.#o.interface ?? 'public';
    const compute = body.data.token.catalog.find((s) => s.type === 'compute')?.endpoints
      .find((e) => e.interface === iface && (this.#o.region === undefined || e.region === this.#o.region));
    if (compute === undefined) throw new OpenStackError(`no ${iface} compute endpoint in the catalog${this.#o.region === undefined ? '' : ` for region ${this.#o.region}`}`);
    const network = body.data.token.catalog.find((s) => s.type === 'network')?.endpoints
      .find((e) => e.interface === iface && (this.#o.region === undefined || e.region === this.#o.region));
    // Keystone's own endpoint from the catalog, else the auth URL it was reached at.
    const identity = body.data.token.catalog.find((s) => s.type === 'identity')?.endpoints
      .find((e) => e.interface === iface && (this.#o.region === undefined || e.region === this.#o.region))?.url ?? this.#o.authUrl;
    this.#token = {
      value: token, expiresAt: Date.parse(body.data.token.expires_at), compute: compute.url.replace(/\/$/, ''), network: network?.url.replace(/\/$/, ''),
      identity: identity.replace(/\/$/, ''),
    };
    return this.#token;
  }

  async showServer(id: string): Promise<{ id: string; status: string } | undefined> {
    const t = await this.#auth();
    const res = await this.#request(`${t.compute}/servers/${encodeURIComponent(id)}`, { headers: { 'x-auth-token': t.value } });
    if (res.status === 404) return undefined;
    if (!res.ok) throw new OpenStackError(`server show ${id}: HTTP ${res.status}`, res.status);
    const body = ServerBody.safeParse(await res.json());
    if (!body.success) throw new OpenStackError(`unexpected server body for ${id}`);
    return { id: body.data.server.id, status: body.data.server.status };
  }

  /** Deletes a soft-deleted server now, releasing its resources (Nova answers 202). */
  async forceDelete(id: string): Promise<void> {
    const t = await this.#auth();
    const res = await this.#request(`${t.compute}/servers/${encodeURIComponent(id)}/action`, {
      method: 'POST', headers: { 'x-auth-token': t.value, 'content-type': 'application/json' }, body: JSON.stringify({ forceDelete: null }),
    });
    if (res.status !== 202) throw new OpenStackError(`forceDelete ${id}: HTTP ${res.status}`, res.status);
  }

  /**
   * A GET of JSON, parsed by `schema`: retried with backoff on transport
   * errors, 429 and 5xx; an expired token is renewed once.
   */
  async #get<T>(endpoint: (t: Endpoints) => string, path: string, schema: z.ZodType<T>): Promise<T> {
    const attempts = Math.max(1, this.#o.attempts ?? 3);
    const sleep = this.#o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    let last: OpenStackError | undefined;
    for (let attempt = 1; attempt <= attempts; attempt += 1) {
      if (attempt > 1) await sleep(Math.min(10_000, 250 * 2 ** (attempt - 2)));
      let res: Response;
      let url = path;
      try {
        const t = await this.#auth();
        url = `${endpoint(t)}${path}`;
        res = await this.#request(url, { headers: { 'x-auth-token': t.value, accept: 'application/json' } });
      } catch (err) {
        last = err instanceof OpenStackError ? err : new OpenStackError(String(err));
        if (last.status !== undefined && last.status < 500) throw last;
        continue;
      }
      if (res.status === 401) { this.#token = undefined; last = new OpenStackError(`GET ${url}: HTTP 401`, 401); continue; }
      if (res.status === 429 || res.status >= 500) { last = new OpenStackError(`GET ${url}: HTTP ${res.status}`, res.status); continue; }
      if (!res.ok) throw new OpenStackError(`GET ${url}: HTTP ${res.status}`, res.status);
      const body = schema.safeParse(await res.json().catch(() => undefined));
      if (!body.success) throw new OpenStackError(`GET ${url}: unexpected body: ${body.error.issues[0]?.path.join('.') ?? ''} ${body.error.issues[0]?.message ?? ''}`);
      return body.data;
    }
    throw last ?? new OpenStackError(`GET ${path}: failed`);
  }

  /** Pages of a listing by limit and marker (the last id of the previous page), until a short page. */
  async *#paged<T extends { id: string }, P>(endpoint: (t: Endpoints) => string, path: string, schema: z.ZodType<P>, items: (p: P) => T[]): AsyncGenerator<T[]> {
    const limit = this.#o.pageSize ?? 500;
    let marker: string | undefined;
    for (;;) {
      const sep = path.includes('?') ? '&' : '?';
      const page = items(await this.#get(endpoint, `${path}${sep}limit=${limit}${marker === undefined ? '' : `&marker=${encodeURIComponent(marker)}`}`, schema));
      if (page.length > 0) yield page;
      if (page.length < limit) return;
      marker = page.at(-1)?.id;
    }
  }

  #network = (t: { network: string | undefined }): string => {
    if (t.network === undefined) throw new OpenStackError(`no ${this.#o.interface ?? 'public'} network endpoint in the catalog`, 400);
    return t.network;
  };

  /** A user's or project's name from Keystone (`GET /v3/users/{id}`, `/v3/projects/{id}`); null when Keystone does not know the id. */
  async identityName(kind: IdentityKind, id: string): Promise<string | null> {
    try {
      if (kind === 'user') return (await this.#get((t) => t.identity, `/users/${encodeURIComponent(id)}`, UserBody)).user.name;
      return (await this.#get((t) => t.identity, `/projects/${encodeURIComponent(id)}`, ProjectBody)).project.name;
    } catch (err) {
      if (err instanceof OpenStackError && err.status === 404) return null;
      throw err;
    }
  }

  async *servers(): AsyncGenerator<ListedServer[]> {
    for await (const page of this.#paged((t) => t.compute, '/servers/detail?all_tenants=1', ServersPage, (p) => p.servers)) {
      yield page.map((s) => ({
        id: s.id, name: s.name, project: s.tenant_id, user: s.user_id, host: s['OS-EXT-SRV-ATTR:host'],
        state: s['OS-EXT-STS:vm_state'] ?? s.status?.toLowerCase(), createdAt: s.created,
        addresses: Object.entries(s.addresses).flatMap(([network, list]) => list.map((a) => ({
          address: a.addr, kind: a['OS-EXT-IPS:type'] ?? 'fixed', mac: a['OS-EXT-IPS-MAC:mac_addr'], network,
        }))),
      }));
    }
  }

  async *ports(): AsyncGenerator<ListedPort[]> {
    for await (const page of this.#paged(this.#network, '/v2.0/ports', PortsPage, (p) => p.ports)) {
      yield page.map((p) => ({
        id: p.id, deviceId: p.device_id, deviceOwner: p.device_owner, networkId: p.network_id, mac: p.mac_address, project: p.project_id ?? p.tenant_id,
        fixedIps: p.fixed_ips.map((f) => f.ip_address), createdAt: p.created_at,
      }));
    }
  }

  async *floatingIps(): AsyncGenerator<ListedFloatingIp[]> {
    for await (const page of this.#paged(this.#network, '/v2.0/floatingips', FloatingIpsPage, (p) => p.floatingips)) {
      yield page.map((f) => ({
        id: f.id, address: f.floating_ip_address, portId: f.port_id, networkId: f.floating_network_id, project: f.project_id ?? f.tenant_id,
        instanceId: f.port_details?.device_id, createdAt: f.created_at,
      }));
    }
  }

  async *routers(): AsyncGenerator<ListedRouter[]> {
    for await (const page of this.#paged(this.#network, '/v2.0/routers', RoutersPage, (p) => p.routers)) {
      yield page.map((r) => ({
        id: r.id, name: r.name, project: r.project_id ?? r.tenant_id, createdAt: r.created_at,
        gatewayNetworkId: r.external_gateway_info?.network_id, gatewayIps: r.external_gateway_info?.external_fixed_ips.map((i) => i.ip_address) ?? [],
      }));
    }
  }
}
