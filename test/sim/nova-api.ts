// A small Keystone v3 + Nova API v2.1 front for NovaSim, enough for the
// operator's OpenStack client: application-credential tokens with a service
// catalog, users' and projects' names (`/v3/users/{id}`, `/v3/projects/{id}`),
// server show and the paged server listing (`/servers/detail`,
// limit/marker, all_tenants), the forceDelete/restore server actions and
// DELETE; with a NeutronSim, its paged port, floating-IP and router listings
// under the catalog's network endpoint.
// Shapes follow the public API reference (identity v3 "Authenticate with an
// application credential", compute "Show Server Details", "Force-Delete
// Server", "Restore Soft-Deleted Instance"); what is not modelled answers 404.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';
import { ConflictError, NotFoundError, type NovaServer, type NovaSim, type Requester } from './nova.ts';
import type { NeutronSim } from './neutron.ts';
import { neutronFloatingIpBody, neutronPortBody, neutronRouterBody } from './openstack-messages.ts';
import { systemClock, type SimClock } from './timeline.ts';

export interface AppCredential {
  id: string;
  secret: string;
  /** The user and project the credential belongs to (they become the initiator of actions). */
  userId: string;
  projectId: string;
  name?: string;
  roles?: string[];
}

export interface NovaApiOptions {
  nova: NovaSim;
  /** Serves Neutron's listings too (catalog type `network`). */
  neutron?: NeutronSim;
  credentials: AppCredential[];
  /** Token lifetime. Default one hour. */
  tokenTtlMs?: number;
  region?: string;
  clock?: SimClock;
  /** Keystone's users and projects, name by id; unknown ids answer 404. */
  identities?: { users?: Record<string, string>; projects?: Record<string, string> };
}

export interface ApiRequestRecord {
  method: string;
  path: string;
  status: number;
  at: Date;
  /** The credential id behind the token, when one was valid. */
  credential?: string;
}

interface Token {
  credential: AppCredential;
  issuedAt: Date;
  expiresAt: Date;
}

const NOVA_POWER: Record<string, number> = { pending: 0, running: 1, paused: 3, shutdown: 4, crashed: 6, suspended: 7 };
const NOVA_STATUS: Record<string, string> = {
  active: 'ACTIVE', building: 'BUILD', stopped: 'SHUTOFF', paused: 'PAUSED', suspended: 'SUSPENDED', rescued: 'RESCUE',
  resized: 'VERIFY_RESIZE', 'soft-delete': 'SOFT_DELETED', deleted: 'DELETED', error: 'ERROR', shelved: 'SHELVED',
  shelved_offloaded: 'SHELVED_OFFLOADED',
};

function iso(d: Date | null): string | null {
  return d === null ? null : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The API's microseconds-without-zone times for OS-SRV-USG. */
function usg(d: Date | null): string | null {
  return d === null ? null : `${d.toISOString().slice(0, 23)}000`;
}

class HttpError extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    super(`HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function unauthorized(): HttpError {
  return new HttpError(401, { error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } });
}

function novaFault(status: number, message: string): HttpError {
  const key = status === 404 ? 'itemNotFound' : status === 409 ? 'conflictingRequest' : status === 403 ? 'forbidden' : 'badRequest';
  return new HttpError(status, { [key]: { code: status, message } });
}

export class NovaApi {
  readonly #o: NovaApiOptions;
  readonly #server: Server;
  readonly #tokens = new Map<string, Token>();
  readonly #clock: SimClock;
  readonly requests: ApiRequestRecord[] = [];
  readonly #names: { user: Map<string, string>; project: Map<string, string> };
  #base = '';

  private constructor(o: NovaApiOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#names = { user: new Map(Object.entries(o.identities?.users ?? {})), project: new Map(Object.entries(o.identities?.projects ?? {})) };
    this.#server = createServer((req, res) => {
      void this.#handle(req, res);
    });
  }

  static async start(options: NovaApiOptions): Promise<NovaApi> {
    const api = new NovaApi(options);
    await new Promise<void>((resolve, reject) => {
      api.#server.once('error', reject);
      api.#server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = api.#server.address() as AddressInfo;
    api.#base = `http://127.0.0.1:${port}`;
    return api;
  }

  /** Keystone's versioned endpoint, `http://127.0.0.1:<port>/v3` (the `auth_url`). */
  get authUrl(): string {
    return `${this.#base}/v3`;
  }

  /** The compute endpoint the catalog lists. */
  get computeUrl(): string {
    return `${this.#base}/v2.1`;
  }

  /** Creates or renames a Keystone user or project (`undefined` deletes it). */
  setIdentity(kind: 'user' | 'project', id: string, name: string | undefined): void {
    if (name === undefined) this.#names[kind].delete(id);
    else this.#names[kind].set(id, name);
  }

  /** Invalidates every token issued so far (the next call gets 401 and must authenticate again). */
  revokeTokens(): void {
    this.#tokens.clear();
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.#base);
    const method = req.method ?? 'GET';
    let status = 500;
    let credential: string | undefined;
    try {
      const raw = await readBody(req);
      const result = await this.#route(method, url.pathname, raw, req, (c) => (credential = c));
      status = result.status;
      const headers: Record<string, string> = { ...result.headers };
      if (result.body === undefined) {
        res.writeHead(status, headers);
        res.end();
      } else {
        const text = JSON.stringify(result.body);
        res.writeHead(status, { ...headers, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(text)) });
        res.end(text);
      }
    } catch (err) {
      const e = err instanceof HttpError ? err : new HttpError(500, { computeFault: { code: 500, message: String(err) } });
      status = e.status;
      const text = JSON.stringify(e.body);
      const extra: Record<string, string> = e.status === 401 ? { 'WWW-Authenticate': `Keystone uri="${this.#base}/v3"` } : {};
      res.writeHead(e.status, { ...extra, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(text)) });
      res.end(text);
    } finally {
      this.requests.push({ method, path: url.pathname, status, at: this.#clock.now(), ...(credential === undefined ? {} : { credential }) });
    }
  }

  async #route(
    method: string,
    path: string,
    raw: string,
    req: IncomingMessage,
    authenticated: (credentialId: string) => void,
  ): Promise<{ status: number; body?: unknown; headers?: Record<string, string> }> {
    if (method === 'POST' && path === '/v3/auth/tokens') return this.#issueToken(raw, authenticated);
    if (method === 'GET' && (path === '/v3' || path === '/v3/')) {
      return { status: 200, body: { version: { id: 'v3.14', status: 'stable', updated: '2020-04-07T00:00:00Z', links: [{ rel: 'self', href: `${this.#base}/v3/` }], 'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' }] } } };
    }
    const identity = /^\/v3\/(users|projects)\/([^/]+)$/.exec(path);
    if (method === 'GET' && identity !== null) {
      const token = this.#authenticate(req);
      authenticated(token.credential.id);
      const kind = identity[1] === 'users' ? 'user' : 'project';
      const id = decodeURIComponent(identity[2] ?? '');
      const name = this.#names[kind].get(id);
      if (name === undefined) throw new HttpError(404, { error: { code: 404, title: 'Not Found', message: `Could not find ${kind}: ${id}.` } });
      const links = { self: `${this.#base}/v3/${identity[1]}/${encodeURIComponent(id)}` };
      return {
        status: 200,
        body: kind === 'user'
          ? { user: { id, name, domain_id: 'default', enabled: true, password_expires_at: null, options: {}, links } }
          : { project: { id, name, domain_id: 'default', description: '', enabled: true, parent_id: 'default', is_domain: false, tags: [], options: {}, links } },
      };
    }
    if (method === 'GET' && path === '/v2.1/servers/detail') {
      const token = this.#authenticate(req);
      authenticated(token.credential.id);
      const q = new URL(req.url ?? '/', this.#base).searchParams;
      const all = q.get('all_tenants') === '1' || q.get('all_tenants') === 'true';
      const servers = this.#o.nova.servers().filter((s) => !s.deleted && (all || s.project === token.credential.projectId))
        .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || (a.uuid < b.uuid ? -1 : 1));
      const page = paginate(servers, (s) => s.uuid, q);
      return { status: 200, body: { servers: page.map((s) => this.#render(s)) }, headers: versionHeaders(req) };
    }
    const net = /^\/network\/v2\.0\/(ports|floatingips|routers)$/.exec(path);
    if (method === 'GET' && net !== null && this.#o.neutron !== undefined) {
      const token = this.#authenticate(req);
      authenticated(token.credential.id);
      const q = new URL(req.url ?? '/', this.#base).searchParams;
      const neutron = this.#o.neutron;
      const byId = <T extends { id: string }>(xs: T[]) => xs.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      if (net[1] === 'ports') return { status: 200, body: { ports: paginate(byId(neutron.ports()), (p) => p.id, q).map(neutronPortBody) } };
      if (net[1] === 'floatingips') return { status: 200, body: { floatingips: paginate(byId(neutron.floatingIps()), (f) => f.id, q).map(neutronFloatingIpBody) } };
      return { status: 200, body: { routers: paginate(byId(neutron.routers()), (r) => r.id, q).map(neutronRouterBody) } };
    }
    const m = /^\/v2\.1\/servers\/([^/]+)(\/action)?$/.exec(path);
    if (m === null) throw new HttpError(404, { itemNotFound: { code: 404, message: 'The resource could not be found.' } });
    const token = this.#authenticate(req);
    authenticated(token.credential.id);
    const by: Requester = { user: token.credential.userId, project: token.credential.projectId, requestId: `req-${randomUUID()}` };
    const id = decodeURIComponent(m[1] ?? '');
    const version = versionHeaders(req);
    const nova = this.#o.nova;
    if (m[2] === undefined) {
      if (method === 'GET') {
        const server = nova.server(id);
        if (server === undefined || server.deleted) throw novaFault(404, `Instance ${id} could not be found.`);
        return { status: 200, body: { server: this.#render(server) }, headers: version };
      }
      if (method === 'DELETE') {
        await this.#act(() => nova.delete(id, by));
        return { status: 204, headers: version };
      }
      throw new HttpError(405, { badRequest: { code: 405, message: 'Method not allowed' } });
    }
    if (method !== 'POST') throw new HttpError(405, { badRequest: { code: 405, message: 'Method not allowed' } });
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      throw novaFault(400, 'Malformed request body');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body) || Object.keys(body).length !== 1) {
      throw novaFault(400, 'Malformed request body');
    }
    const action = Object.keys(body)[0] ?? '';
    if (action === 'forceDelete') {
      await this.#act(() => nova.forceDelete(id, by));
      return { status: 202, headers: version };
    }
    if (action === 'restore') {
      await this.#act(() => nova.restore(id, by));
      return { status: 202, headers: version };
    }
    throw novaFault(400, `There is no such action: ${action}`);
  }

  async #act(fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (err instanceof NotFoundError) throw novaFault(404, err.message);
      if (err instanceof ConflictError) throw novaFault(409, err.message);
      if (err instanceof Error && /being deleted/.test(err.message)) throw novaFault(409, err.message);
      throw err;
    }
  }

  #issueToken(raw: string, authenticated: (credentialId: string) => void): { status: number; body: unknown; headers: Record<string, string> } {
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      throw new HttpError(400, { error: { code: 400, title: 'Bad Request', message: 'Expecting to find valid JSON in request body.' } });
    }
    const identity = (body as { auth?: { identity?: { methods?: unknown; application_credential?: { id?: unknown; secret?: unknown } } } }).auth?.identity;
    const methods = identity?.methods;
    const given = identity?.application_credential;
    if (!Array.isArray(methods) || !methods.includes('application_credential') || given === undefined) {
      throw new HttpError(400, { error: { code: 400, title: 'Bad Request', message: 'Expecting an application_credential identity.' } });
    }
    const credential = this.#o.credentials.find((c) => c.id === given.id && c.secret === given.secret);
    if (credential === undefined) throw unauthorized();
    authenticated(credential.id);
    const issuedAt = this.#clock.now();
    const expiresAt = new Date(issuedAt.getTime() + (this.#o.tokenTtlMs ?? 3600_000));
    const token = `gAAAA${randomBytes(48).toString('base64url')}`;
    this.#tokens.set(token, { credential, issuedAt, expiresAt });
    const region = this.#o.region ?? 'RegionOne';
    const endpoints = (url: string) => ['public', 'internal', 'admin'].map((iface) => ({ id: randomUUID().replace(/-/g, ''), interface: iface, region_id: region, region, url }));
    const roles = (credential.roles ?? ['member', 'reader']).map((name) => ({ id: randomUUID().replace(/-/g, ''), name }));
    return {
      status: 201,
      headers: { 'X-Subject-Token': token },
      body: {
        token: {
          methods: ['application_credential'],
          user: { id: credential.userId, name: credential.userId, domain: { id: 'default', name: 'Default' }, password_expires_at: null },
          project: { id: credential.projectId, name: credential.projectId, domain: { id: 'default', name: 'Default' } },
          roles,
          is_domain: false,
          audit_ids: [randomBytes(16).toString('base64url')],
          issued_at: `${issuedAt.toISOString().slice(0, 23)}000Z`,
          expires_at: `${expiresAt.toISOString().slice(0, 23)}000Z`,
          application_credential: { id: credential.id, name: credential.name ?? credential.id, restricted: true },
          catalog: [
            { id: randomUUID().replace(/-/g, ''), type: 'identity', name: 'keystone', endpoints: endpoints(`${this.#base}/v3`) },
            { id: randomUUID().replace(/-/g, ''), type: 'compute', name: 'nova', endpoints: endpoints(`${this.#base}/v2.1`) },
            ...(this.#o.neutron === undefined ? [] : [{ id: randomUUID().replace(/-/g, ''), type: 'network', name: 'neutron', endpoints: endpoints(`${this.#base}/network`) }]),
          ],
        },
      },
    };
  }

  #authenticate(req: IncomingMessage): Token {
    const header = req.headers['x-auth-token'];
    const value = Array.isArray(header) ? header[0] : header;
    if (value === undefined) throw unauthorized();
    const token = this.#tokens.get(value);
    if (token === undefined) throw unauthorized();
    if (token.expiresAt.getTime() <= this.#clock.now().getTime()) {
      this.#tokens.delete(value);
      throw unauthorized();
    }
    return token;
  }

  #render(s: NovaServer): Record<string, unknown> {
    const addresses: Record<string, unknown[]> = {};
    for (const a of s.addresses) {
      (addresses[a.network] ??= []).push({ addr: a.address, version: a.address.includes(':') ? 6 : 4, 'OS-EXT-IPS:type': 'fixed', 'OS-EXT-IPS-MAC:mac_addr': a.mac });
      // Nova's network info cache lists a floating IP under the fixed address it maps to.
      for (const f of this.#o.neutron?.floatingIps() ?? []) {
        if (f.portId !== a.portId) continue;
        (addresses[a.network] ??= []).push({ addr: f.address, version: 4, 'OS-EXT-IPS:type': 'floating', 'OS-EXT-IPS-MAC:mac_addr': a.mac });
      }
    }
    const self = `${this.#base}/v2.1/servers/${s.uuid}`;
    return {
      id: s.uuid, name: s.displayName, status: NOVA_STATUS[s.state] ?? s.state.toUpperCase(), tenant_id: s.project, user_id: s.user,
      created: iso(s.createdAt), updated: iso(s.updatedAt ?? s.createdAt), hostId: s.host === null ? '' : hostIdFor(s.project, s.host),
      addresses, accessIPv4: '', accessIPv6: '', metadata: s.metadata, key_name: s.keyName, config_drive: '', progress: 0, locked: false,
      image: s.imageUuid === '' ? '' : { id: s.imageUuid, links: [{ rel: 'bookmark', href: `${this.#base}/images/${s.imageUuid}` }] },
      flavor: { id: s.flavor.flavorid, links: [{ rel: 'bookmark', href: `${this.#base}/flavors/${s.flavor.flavorid}` }] },
      links: [{ rel: 'self', href: self }, { rel: 'bookmark', href: self }],
      security_groups: [{ name: 'default' }],
      'OS-DCF:diskConfig': 'MANUAL',
      'OS-EXT-AZ:availability_zone': s.availabilityZone,
      'OS-EXT-SRV-ATTR:host': s.host,
      'OS-EXT-SRV-ATTR:hypervisor_hostname': s.node,
      'OS-EXT-SRV-ATTR:instance_name': s.instanceName,
      'OS-EXT-STS:vm_state': s.state,
      'OS-EXT-STS:task_state': s.taskState,
      'OS-EXT-STS:power_state': NOVA_POWER[s.powerState] ?? 0,
      'OS-SRV-USG:launched_at': usg(s.launchedAt),
      'OS-SRV-USG:terminated_at': usg(s.terminatedAt),
      'os-extended-volumes:volumes_attached': s.volumes.map((v) => ({ id: v.id, delete_on_termination: v.deleteOnTermination })),
    };
  }
}

/** One page by `limit` and `marker` (the last id of the previous page), in the order given. */
function paginate<T>(items: T[], id: (t: T) => string, q: URLSearchParams): T[] {
  const marker = q.get('marker');
  let start = 0;
  if (marker !== null) {
    const i = items.findIndex((t) => id(t) === marker);
    if (i < 0) throw novaFault(400, `marker [${marker}] not found`);
    start = i + 1;
  }
  const limit = Number(q.get('limit') ?? '1000');
  return items.slice(start, start + (Number.isInteger(limit) && limit > 0 ? limit : 1000));
}

/** Nova derives hostId per project from the host name; a stable stand-in is enough here. */
function hostIdFor(project: string, host: string): string {
  return Buffer.from(`${project}:${host}`).toString('hex').slice(0, 56).padEnd(56, '0');
}

function versionHeaders(req: IncomingMessage): Record<string, string> {
  const asked = req.headers['openstack-api-version'];
  const value = typeof asked === 'string' && asked.startsWith('compute ') ? asked.slice('compute '.length) : '2.1';
  return { 'OpenStack-API-Version': `compute ${value}`, 'X-OpenStack-Nova-API-Version': value, Vary: 'OpenStack-API-Version, X-OpenStack-Nova-API-Version' };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
