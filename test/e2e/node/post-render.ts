// A helm post-renderer for the test node only (test/env/node): it has no pod
// network, no kube-proxy and no cluster DNS, so every pod of the chart runs
// in the host's network on loopback addresses, and the operator reaches the
// API server at its loopback address. One node means one free port per
// replica, so the chart's Deployment becomes one single-replica Deployment
// per port, alike but for the port: together they are the chart's replicas.
//
//   node post-render.ts '{"ports":[18080,18081]}'  <manifests  >manifests
//
// Nothing else of the rendered chart changes; a cluster with a pod network
// installs the chart as it is.
import { parseAllDocuments, stringify } from 'yaml';
import { z } from 'zod';

const Args = z.object({ ports: z.array(z.number().int().min(1024).max(65535)).min(1) });

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const objAt = (o: Obj, ...path: string[]): Obj => {
  let cur: unknown = o;
  for (const key of path) {
    if (!isObj(cur) || !isObj(cur[key])) throw new Error(`post-render: no object at ${path.join('.')}`);
    cur = cur[key];
  }
  return cur as Obj;
};
const listAt = (o: Obj, key: string): Obj[] => {
  const v = o[key];
  if (!Array.isArray(v) || !v.every(isObj)) throw new Error(`post-render: no list at ${key}`);
  return v;
};

function onHostNetwork(podSpec: Obj): void {
  podSpec['hostNetwork'] = true;
  podSpec['dnsPolicy'] = 'ClusterFirstWithHostNet';
}

/** The operator's container listening on 127.0.0.1:port, probed there. */
function listenOn(podSpec: Obj, port: number): void {
  for (const c of listAt(podSpec, 'containers')) {
    const env = listAt(c, 'env');
    const listen = env.find((e) => e['name'] === 'QUARANTINE_LISTEN');
    if (listen === undefined) throw new Error('post-render: the operator container has no QUARANTINE_LISTEN');
    listen['value'] = `127.0.0.1:${port}`;
    for (const p of listAt(c, 'ports')) if (p['name'] === 'http') p['containerPort'] = port;
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
      const get = objAt(c, probe, 'httpGet');
      get['host'] = '127.0.0.1';
      get['port'] = port;
    }
  }
}

export function postRender(manifests: string, ports: number[]): string {
  const out: unknown[] = [];
  for (const doc of parseAllDocuments(manifests)) {
    const o: unknown = doc.toJS();
    if (!isObj(o)) continue;
    if (o['kind'] === 'Deployment') {
      ports.forEach((port, i) => {
        const d = structuredClone(o);
        const meta = objAt(d, 'metadata');
        const replica = String.fromCharCode(97 + i);
        if (i > 0) meta['name'] = `${String(meta['name'])}-${replica}`;
        const spec = objAt(d, 'spec');
        spec['replicas'] = 1;
        // A new pod cannot start beside the old one on the same port of the one node: replace, do not surge.
        spec['strategy'] = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } };
        objAt(spec, 'selector', 'matchLabels')['qtest.node/replica'] = replica;
        objAt(spec, 'template', 'metadata', 'labels')['qtest.node/replica'] = replica;
        const podSpec = objAt(spec, 'template', 'spec');
        onHostNetwork(podSpec);
        listenOn(podSpec, port);
        out.push(d);
      });
      continue;
    }
    if (o['kind'] === 'Pod') {
      // The chart's `helm test` pod fetches /readyz through the Service, which needs kube-proxy and DNS.
      const spec = objAt(o, 'spec');
      onHostNetwork(spec);
      for (const c of listAt(spec, 'containers')) {
        const command = c['command'];
        if (!Array.isArray(command)) continue;
        c['command'] = command.map((part: unknown) => (typeof part === 'string' ? part.replace(/https?:\/\/[^'"\s]+\/readyz/g, `http://127.0.0.1:${ports[0]}/readyz`) : part));
      }
    }
    out.push(o);
  }
  return out.map((o) => stringify(o)).join('---\n');
}

if (import.meta.main) {
  const args = Args.parse(JSON.parse(process.argv[2] ?? '{}'));
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  process.stdout.write(postRender(Buffer.concat(chunks).toString('utf8'), args.ports));
}
