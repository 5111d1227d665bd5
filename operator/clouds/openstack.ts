// A thin OpenStack client: Keystone v3 application-credential tokens and the
// two Nova calls the operator needs. Responses are parsed, not trusted.
import { z } from 'zod';

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
}

export interface CloudApi {
  showServer(id: string): Promise<{ id: string; status: string } | undefined>;
  forceDelete(id: string): Promise<void>;
}

export class OpenStackClient implements CloudApi {
  readonly #o: OpenStackOptions;
  readonly #fetch: typeof fetch;
  #token: { value: string; expiresAt: number; compute: string } | undefined;

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

  async #auth(): Promise<{ value: string; compute: string }> {
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
    this.#token = { value: token, expiresAt: Date.parse(body.data.token.expires_at), compute: compute.url.replace(/\/$/, '') };
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
}
