// The post-renderer that fits the chart to the test node (no pod network, one
// free port per replica) changes only what the node lacks: every pod on the
// host's network at loopback, one Deployment per port, probes and the helm
// test pointed there. Everything else of the rendered chart stays as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { helmBinary } from '../support/helm.ts';
import { postRender } from '../e2e/node/post-render.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const chart = join(root, 'charts', 'quarantine-operator');

type Doc = Record<string, any>;
const docs = (yaml: string): Doc[] => parseAllDocuments(yaml).map((d) => d.toJS() as Doc | null).filter((d): d is Doc => d !== null);

const rendered = execFileSync(helmBinary(), ['template', 'quarantine', chart, '-n', 'quarantine-system', '-f', join(chart, 'ci', 'test-values.yaml')], {
  encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/nonexistent' },
});

for (const ports of [[18080], [18080, 18081], [20001, 20002, 20003]]) {
  test(`with ${ports.length} port(s): one single-replica Deployment per port, on the host network at loopback`, () => {
    const before = docs(rendered);
    const after = docs(postRender(rendered, ports));
    const deployments = after.filter((d) => d['kind'] === 'Deployment');
    assert.equal(deployments.length, ports.length);
    assert.equal(new Set(deployments.map((d) => d['metadata'].name)).size, ports.length, 'distinct names');
    assert.equal(new Set(deployments.map((d) => JSON.stringify(d['spec'].selector))).size, ports.length, 'selectors that do not overlap');
    deployments.forEach((d, i) => {
      const spec = d['spec'];
      assert.equal(spec.replicas, 1);
      assert.equal(spec.strategy.rollingUpdate.maxSurge, 0, 'replaced, never two on one port');
      assert.deepEqual(spec.template.metadata.labels, { ...spec.template.metadata.labels, ...spec.selector.matchLabels }, 'the template matches its selector');
      const pod = spec.template.spec;
      assert.equal(pod.hostNetwork, true);
      const c = pod.containers[0];
      assert.equal(c.env.find((e: Doc) => e['name'] === 'QUARANTINE_LISTEN').value, `127.0.0.1:${ports[i]}`);
      for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) assert.deepEqual([c[probe].httpGet.host, c[probe].httpGet.port], ['127.0.0.1', ports[i]], probe);
    });
    const testPod = after.find((d) => d['kind'] === 'Pod');
    assert.equal(testPod?.['spec'].hostNetwork, true);
    assert.match(testPod?.['spec'].containers[0].command.join(' '), new RegExp(`http://127\\.0\\.0\\.1:${ports[0]}/readyz`));
    // Every other object is untouched.
    const others = (list: Doc[]) => list.filter((d) => d['kind'] !== 'Deployment' && d['kind'] !== 'Pod').map((d) => JSON.stringify(d)).sort();
    assert.deepEqual(others(after), others(before));
    // And the Deployment differs from the chart's only where the node needs it.
    const original = before.find((d) => d['kind'] === 'Deployment') as Doc;
    const first = structuredClone(deployments[0]) as Doc;
    delete first['spec'].strategy;
    first['spec'].replicas = original['spec'].replicas;
    delete first['spec'].selector.matchLabels['qtest.node/replica'];
    delete first['spec'].template.metadata.labels['qtest.node/replica'];
    delete first['spec'].template.spec.hostNetwork;
    delete first['spec'].template.spec.dnsPolicy;
    const c = first['spec'].template.spec.containers[0];
    const oc = original['spec'].template.spec.containers[0];
    c.env = oc.env;
    c.ports = oc.ports;
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) c[probe] = oc[probe];
    assert.deepEqual(first, original);
  });
}
