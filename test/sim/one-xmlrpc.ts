// oned's XML-RPC front for OneSim, enough for the operator's OpenNebula
// client: `one.vmpool.info(session, filter, start, end, state)` over real
// HTTP, answering the `[success, result, error code]` array with a VM_POOL of
// the same VM documents the hooks publish. Paging as oned's paginated pools:
// start >= 0 with end < -1 is an offset and a page size (-end); otherwise an
// id range. State -1 lists every state but DONE, -2 every state, n >= 0 that
// state. A wrong session answers [false, "[one.vmpool.info] User couldn't be
// authenticated, aborting call.", 256]; other methods are an XML-RPC fault.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { childrenNamed, firstChild, parseXml } from '../../operator/intake/decode/xml.ts';

export interface OneXmlRpcOptions {
  /** A OneSim, or anything that answers the same three questions. */
  one: { vmIds(): number[]; vm(id: number): { state: number } | undefined; vmXml(id: number): string };
  /** `user:password` accepted. */
  session: string;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function triple(ok: boolean, result: string, code: number): string {
  return `<?xml version="1.0"?><methodResponse><params><param><value><array><data><value><boolean>${ok ? 1 : 0}</boolean></value><value><string>${esc(result)}</string></value><value><i4>${code}</i4></value></data></array></value></param></params></methodResponse>`;
}

function fault(code: number, text: string): string {
  return `<?xml version="1.0"?><methodResponse><fault><value><struct><member><name>faultCode</name><value><int>${code}</int></value></member><member><name>faultString</name><value><string>${esc(text)}</string></value></member></struct></value></fault></methodResponse>`;
}

export class OneXmlRpc {
  readonly #o: OneXmlRpcOptions;
  readonly #server: Server;
  #url = '';
  readonly calls: Array<{ method: string; params: Array<string | number> }> = [];

  private constructor(o: OneXmlRpcOptions) {
    this.#o = o;
    this.#server = createServer((req, res) => {
      void this.#handle(req).then((body) => {
        res.writeHead(200, { 'Content-Type': 'text/xml', 'Content-Length': String(Buffer.byteLength(body)) });
        res.end(body);
      });
    });
  }

  static async start(o: OneXmlRpcOptions): Promise<OneXmlRpc> {
    const s = new OneXmlRpc(o);
    await new Promise<void>((resolve, reject) => {
      s.#server.once('error', reject);
      s.#server.listen(0, '127.0.0.1', () => resolve());
    });
    s.#url = `http://127.0.0.1:${(s.#server.address() as AddressInfo).port}/RPC2`;
    return s;
  }

  get url(): string {
    return this.#url;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let method: string;
    let params: Array<string | number>;
    try {
      const call = parseXml(Buffer.concat(chunks).toString('utf8'));
      method = firstChild(call, 'methodName')?.text ?? '';
      params = childrenNamed(firstChild(call, 'params') ?? call, 'param').map((p) => {
        const v = firstChild(p, 'value');
        const typed = v?.children[0];
        if (typed === undefined) return v?.text ?? '';
        return typed.name === 'i4' || typed.name === 'int' ? Number(typed.text) : typed.text;
      });
    } catch (err) {
      return fault(-32700, `parse error: ${String(err)}`);
    }
    this.calls.push({ method, params });
    if (method !== 'one.vmpool.info') return fault(-32601, `method ${method} not found`);
    if (params[0] !== this.#o.session) return triple(false, "[one.vmpool.info] User couldn't be authenticated, aborting call.", 256);
    const [, , start = -1, end = -1, state = -1] = params.map((p) => (typeof p === 'number' ? p : Number(p)));
    const one = this.#o.one;
    let ids = one.vmIds().filter((id) => {
      const s = one.vm(id)?.state ?? -1;
      return state === -2 ? true : state === -1 ? s !== 6 : s === state;
    });
    if (start >= 0 && end < -1) ids = ids.slice(start, start + -end);
    else ids = ids.filter((id) => (start < 0 || id >= start) && (end < 0 || id <= end));
    const docs = ids.map((id) => one.vmXml(id).replace(/^<\?xml[^>]*\?>/, ''));
    return triple(true, `<VM_POOL>${docs.join('')}</VM_POOL>`, 0);
  }
}
