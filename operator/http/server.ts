// The operator's HTTP face: Prometheus metrics, probes, and a small read-only
// JSON API for investigators, behind a bearer token.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import type { Metrics } from './metrics.ts';
import { traceAddress } from '../ledger/trace.ts';
import { deriveAll } from '../ledger/derive-pending.ts';
import { canonicalIp } from '../domain/ip.ts';
import { parseOffsetTime } from '../domain/instant.ts';
import { instanceHistory } from '../ledger/instance-history.ts';
import type { Logger } from '../log.ts';
import { investigationRoute } from './investigation-routes.ts';

export interface HttpOptions {
  host: string;
  port: number;
  db: Kysely<LedgerSchema>;
  metrics: Metrics;
  /** The API's bearer token; without one the API answers 503 (probes and metrics still work). */
  apiToken: string | undefined;
  ready: () => Promise<{ ready: boolean; reasons: string[] }>;
  logger: Logger;
  /** PEM certificate chain and key: serve HTTPS instead of HTTP. */
  tls?: { cert: string | Buffer; key: string | Buffer } | undefined;
}

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = type === 'application/json' ? `${JSON.stringify(body, null, 2)}\n` : String(body);
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(text);
}

// Comparing digests keeps the comparison constant-time whatever the lengths.
function tokenMatches(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export async function startHttp(o: HttpOptions): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const api = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    if (o.apiToken === undefined) return send(res, 503, { error: 'the query API is disabled: no API token configured' });
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('Bearer ') || !tokenMatches(auth.slice(7), o.apiToken)) {
      res.setHeader('www-authenticate', 'Bearer');
      return send(res, 401, { error: 'a valid bearer token is required' });
    }
    const parts = url.pathname.split('/').filter((p) => p !== '');
    // Whatever the intake has acknowledged is in the answer: intervals it left to a derivation pass are derived first.
    await deriveAll(o.db);
    // /api/v1/trace/ip?address=&at=[&cloud=]
    if (parts[2] === 'trace' && parts[3] === 'ip' && parts.length === 4) {
      const address = url.searchParams.get('address') ?? '';
      const at = url.searchParams.get('at') ?? '';
      const canonical = canonicalIp(address);
      if (canonical === undefined) return send(res, 400, { error: 'address must be an IPv4 or IPv6 address' });
      const when = parseOffsetTime(at);
      if (when === undefined) return send(res, 400, { error: 'at must be a valid ISO 8601 time with an offset' });
      const cloud = url.searchParams.get('cloud') ?? undefined;
      const t = await traceAddress(o.db, canonical, when, cloud);
      return send(res, t.holders.length === 0 ? 404 : 200, t);
    }
    if (parts[2] === 'trace' && parts[3] === 'instance' && parts.length === 5) {
      const found = await instanceHistory(o.db, decodeURIComponent(parts[4] ?? ''), url.searchParams.get('cloud') ?? undefined);
      return send(res, found.length === 0 ? 404 : 200, found);
    }
    const answer = await investigationRoute(o.db, req, parts, url);
    if (answer !== null) return send(res, answer.status, answer.body);
    return send(res, 404, { error: 'no such route' });
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = async () => {
      // POST only for bulk attribution, which carries the log lines in its body.
      if (req.method !== 'GET' && !(req.method === 'POST' && url.pathname === '/api/v1/attribution')) return send(res, 405, { error: 'only GET' });
      if (url.pathname === '/healthz') return send(res, 200, 'ok\n', 'text/plain');
      if (url.pathname === '/readyz') {
        const r = await o.ready();
        return send(res, r.ready ? 200 : 503, r.ready ? 'ok\n' : `not ready: ${r.reasons.join('; ')}\n`, 'text/plain');
      }
      if (url.pathname === '/metrics') return send(res, 200, await o.metrics.registry.metrics(), o.metrics.registry.contentType);
      if (url.pathname.startsWith('/api/v1/')) return api(req, res, url);
      return send(res, 404, { error: 'no such route' });
    };
    route().catch((err: unknown) => {
      o.logger.error({ err: err instanceof Error ? err.message : String(err), path: url.pathname }, 'http handler failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
    });
  };
  const server: Server = o.tls === undefined ? createServer(handler) : createTlsServer({ cert: o.tls.cert, key: o.tls.key }, handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    server,
    url: `${o.tls === undefined ? 'http' : 'https'}://${o.host.includes(':') ? `[${o.host}]` : o.host}:${addr.port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
