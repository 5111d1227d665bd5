// The OpenNebula hook publisher (hooks/opennebula/quarantine-publish) run the
// way the HEM runs it, with `sh` and a base64 VM document, against the real
// RabbitMQ: the message contract, the spool across a broker outage, and
// refusal of a malformed $TEMPLATE.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { connect as connectTcp, createServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as amqp from 'amqplib';
import { requireEnv, uniqueSuffix } from '../support/env.ts';

const url = requireEnv('QTEST_AMQP_URL');
const publisher = fileURLToPath(new URL('../../hooks/opennebula/quarantine-publish', import.meta.url));
const fixtureDir = new URL('../fixtures/opennebula/', import.meta.url);

const EXCHANGE = 'opennebula';
const ROUTING_KEY = 'notifications.info';
// The publisher's sysexits-style statuses.
const EXIT_DATAERR = 65;
const EXIT_TEMPFAIL = 75;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A VM document as $TEMPLATE carries it: no trailing newline. */
async function vmDocument(name: string): Promise<Buffer> {
  const raw = await readFile(new URL(name, fixtureDir));
  return raw.at(-1) === 0x0a ? raw.subarray(0, -1) : raw;
}

function sha256(body: Buffer): string {
  return createHash('sha256').update(body).digest('hex');
}

function runPublisher(args: string[], env: Record<string, string>, stdin?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', [publisher, ...args], {
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env },
      stdio: 'pipe',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(stdin ?? '');
  });
}

/** A TCP port with nothing listening: a broker that is down. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}

async function spoolEntries(spool: string): Promise<string[]> {
  try {
    return (await readdir(join(spool, 'queue'))).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A TLS front for the broker (which listens in plain AMQP here) with a fresh
 * self-signed certificate for "localhost"; returns its port and CA file.
 */
async function tlsFront(dir: string, broker: URL): Promise<{ port: number; caFile: string; close: () => Promise<void> }> {
  const keyFile = join(dir, 'key.pem');
  const caFile = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', caFile,
    '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' });
  const sockets = new Set<Socket>();
  const server = createTlsServer({ key: await readFile(keyFile), cert: await readFile(caFile) }, (client) => {
    const upstream = connectTcp(Number(broker.port || 5672), broker.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    port: address.port,
    caFile,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('OpenNebula hook publisher against the real broker', () => {
  let model: amqp.ChannelModel;
  let channel: amqp.Channel;
  let work: string;
  const cleanups: Array<() => Promise<unknown>> = [];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'qop-one-hook-'));
    model = await amqp.connect(url);
    channel = await model.createChannel();
    // Stands in for the operator, which owns this exchange in production.
    await channel.assertExchange(EXCHANGE, 'topic', { durable: true });
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    await model?.close().catch(() => undefined);
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  /** A queue of this test's own on the exchange, and a fresh spool and config. */
  async function setup(exchange = EXCHANGE) {
    // Checked in every test rather than in before(), so that each one is
    // reported failed (not cancelled) with the reason.
    const probe = spawnSync('amqp-publish', ['--help'], { stdio: 'ignore' });
    if (probe.error !== undefined) {
      throw new Error(
        `amqp-publish is not installed (${probe.error.message}): the hook publisher needs Debian's amqp-tools; ` +
          'run test/env/install.sh or `apt-get install -y amqp-tools`',
      );
    }
    const suffix = uniqueSuffix();
    const queue = `qop-one-hook.${suffix}`;
    await channel.assertQueue(queue, { durable: false, autoDelete: false });
    cleanups.push(() => channel.deleteQueue(queue));
    if (exchange === EXCHANGE) await channel.bindQueue(queue, exchange, 'notifications.*');
    const spool = join(work, `spool-${suffix}`);
    const config = join(work, `conf-${suffix}`);
    await writeFile(config, '# settings come from the environment in this test\n');
    const env = { QUARANTINE_CONFIG: config, QUARANTINE_SPOOL_DIR: spool, QUARANTINE_AMQP_URL: url };
    return { queue, spool, config, env };
  }

  /** Takes exactly `count` messages from the queue, waiting for them to arrive. */
  async function take(queue: string, count: number, timeoutMs = 15_000): Promise<amqp.GetMessage[]> {
    const got: amqp.GetMessage[] = [];
    const deadline = Date.now() + timeoutMs;
    while (got.length < count) {
      const message = await channel.get(queue, { noAck: true });
      if (message !== false) {
        got.push(message);
      } else if (Date.now() > deadline) {
        throw new Error(`timed out: ${got.length} of ${count} messages arrived on ${queue}`);
      } else {
        await sleep(25);
      }
    }
    return got;
  }

  /**
   * Proves that nothing reached the queue before now: a marker published after
   * the publisher has exited must be the first message there.
   */
  async function assertNothingPublished(queue: string): Promise<void> {
    const marker = `marker-${uniqueSuffix()}`;
    channel.publish(EXCHANGE, ROUTING_KEY, Buffer.from(marker));
    const [first] = await take(queue, 1);
    assert.equal(first?.content.toString(), marker, 'the publisher sent something');
  }

  test('publishes the VM document with the message contract, and the same id for the same hook firing', async () => {
    const { queue, spool, config } = await setup();
    const body = await vmDocument('vm-800-active-shutdown.xml');
    const template = body.toString('base64');
    // The broker URL and the spool from the config file this time, as installed.
    await writeFile(config, `# test\nQUARANTINE_AMQP_URL="${url}"\n  QUARANTINE_SPOOL_DIR=${spool}\n`);
    const fromFile = { QUARANTINE_CONFIG: config };

    const startedAt = Math.floor(Date.now() / 1000);
    // As the HEM runs it with ARGUMENTS_STDIN = YES: the arguments on stdin, no newline.
    const viaStdin = await runPublisher([], fromFile, `${template} vm-shutdown`);
    assert.equal(viaStdin.code, 0, viaStdin.stderr);
    // And as it runs it with the arguments on the command line.
    const viaArgv = await runPublisher([template, 'vm-shutdown'], fromFile);
    assert.equal(viaArgv.code, 0, viaArgv.stderr);
    const afterRuns = Math.floor(Date.now() / 1000);

    const messages = await take(queue, 2);
    const expectedId = `one-800-vm-shutdown-${sha256(body)}`;
    for (const message of messages) {
      assert.deepEqual(message.content, body, 'the body is the decoded $TEMPLATE, byte for byte');
      assert.equal(message.fields.exchange, EXCHANGE);
      assert.equal(message.fields.routingKey, ROUTING_KEY);
      assert.equal(message.properties.deliveryMode, 2);
      assert.equal(message.properties.contentType, 'application/xml');
      const { 'x-published-at': publishedAt, ...headers } = message.properties.headers ?? {};
      assert.deepEqual(headers, {
        'x-message-id': expectedId,
        'x-opennebula-hook': 'vm-shutdown',
        'x-opennebula-vm-id': '800',
      });
      assert.match(String(publishedAt), /^\d+$/);
      assert.ok(Number(publishedAt) >= startedAt && Number(publishedAt) <= afterRuns, `x-published-at ${publishedAt}`);
    }
    assert.match(viaStdin.stdout, new RegExp(`published ${expectedId}`));
    assert.deepEqual(await spoolEntries(spool), [], 'nothing left in the spool');
  });

  test('keeps the message in the spool while the broker is down, then sends the backlog first, in order', async () => {
    const { queue, spool, env } = await setup();
    const shutdown = await vmDocument('vm-800-active-shutdown.xml');
    const hotplug = await vmDocument('vm-801-hotplug-nic-compact.xml');
    const down = new URL(url);
    down.port = String(await closedPort());

    const failed = await runPublisher([shutdown.toString('base64'), 'vm-shutdown'], {
      ...env,
      QUARANTINE_AMQP_URL: down.href,
    });
    assert.equal(failed.code, EXIT_TEMPFAIL, failed.stderr);
    assert.match(failed.stderr, /could not send one-800-vm-shutdown-/);
    assert.match(failed.stderr, /stays in .*queue\/000000000001/);
    assert.ok(!failed.stderr.includes('guest:guest'), 'the credentials are never printed');
    const spooled = await spoolEntries(spool);
    assert.equal(spooled.length, 1);
    assert.deepEqual(await readFile(join(spool, 'queue', spooled[0] ?? '', 'body')), shutdown);

    const recovered = await runPublisher([], env, `${hotplug.toString('base64')} vm-hotplug-nic`);
    assert.equal(recovered.code, 0, recovered.stderr);
    const [first, second] = await take(queue, 2);
    assert.equal(first?.properties.headers?.['x-message-id'], `one-800-vm-shutdown-${sha256(shutdown)}`);
    assert.deepEqual(first?.content, shutdown);
    assert.equal(first?.properties.deliveryMode, 2);
    assert.equal(second?.properties.headers?.['x-message-id'], `one-801-vm-hotplug-nic-${sha256(hotplug)}`);
    assert.equal(second?.properties.headers?.['x-opennebula-vm-id'], '801');
    assert.deepEqual(second?.content, hotplug);
    assert.deepEqual(await spoolEntries(spool), []);
    await assertNothingPublished(queue);
  });

  test('a publish the broker refuses (no such exchange) fails and is spooled; --flush sends it once the exchange exists', async () => {
    const exchange = `opennebula-missing.${uniqueSuffix()}`;
    const { queue, spool, env } = await setup(exchange);
    const body = await vmDocument('vm-801-hotplug-nic-compact.xml');
    const withExchange = { ...env, QUARANTINE_EXCHANGE: exchange };

    const refused = await runPublisher([body.toString('base64'), 'vm-epilog'], withExchange);
    assert.equal(refused.code, EXIT_TEMPFAIL, refused.stderr);
    assert.match(refused.stderr, /NOT_FOUND - no exchange/);
    assert.equal((await spoolEntries(spool)).length, 1);

    await channel.assertExchange(exchange, 'topic', { durable: false });
    cleanups.push(() => channel.deleteExchange(exchange));
    await channel.bindQueue(queue, exchange, 'notifications.*');
    const flushed = await runPublisher(['--flush'], withExchange);
    assert.equal(flushed.code, 0, flushed.stderr);
    const [message] = await take(queue, 1);
    assert.equal(message?.fields.exchange, exchange);
    assert.equal(message?.properties.headers?.['x-opennebula-hook'], 'vm-epilog');
    assert.deepEqual(message?.content, body);
    assert.deepEqual(await spoolEntries(spool), []);
  });

  test('amqps: publishes through TLS with the configured CA, and refuses a broker certificate it cannot verify', async () => {
    const { queue, spool, env } = await setup();
    const body = await vmDocument('vm-801-hotplug-nic-compact.xml');
    const dir = await mkdtemp(join(work, 'tls-'));
    const front = await tlsFront(dir, new URL(url));
    cleanups.push(front.close);
    const secure = new URL(url);
    secure.protocol = 'amqps:';
    secure.hostname = 'localhost';
    secure.port = String(front.port);
    const tlsEnv = { ...env, QUARANTINE_AMQP_URL: secure.href };

    const untrusted = await runPublisher([body.toString('base64'), 'vm-running'], tlsEnv);
    assert.equal(untrusted.code, EXIT_TEMPFAIL, untrusted.stderr);
    assert.ok(!untrusted.stderr.includes(secure.password), 'the password is never printed');
    assert.equal((await spoolEntries(spool)).length, 1);

    const trusted = await runPublisher(['--flush'], { ...tlsEnv, QUARANTINE_AMQP_CACERT: join(dir, 'cert.pem') });
    assert.equal(trusted.code, 0, trusted.stderr);
    const [message] = await take(queue, 1);
    assert.deepEqual(message?.content, body);
    assert.equal(message?.properties.headers?.['x-opennebula-hook'], 'vm-running');
    assert.deepEqual(await spoolEntries(spool), []);
  });

  test('a $TEMPLATE that is not strict base64 of a VM document is refused: non-zero, nothing spooled or published', async () => {
    const { queue, spool, env } = await setup();
    const body = await vmDocument('vm-800-active-shutdown.xml');
    const valid = body.toString('base64');
    const cases: Array<[string, string]> = [
      ['characters outside the alphabet', `${valid.slice(0, 40)}*!${valid.slice(42)}`],
      ['missing padding', Buffer.from('<VM><ID>1</ID></VM>').toString('base64').replace(/=+$/, '')],
      // base64 -d alone would accept this; the HEM never wraps lines.
      ['MIME line breaks', valid.replace(/(.{76})/g, '$1\n')],
      ['a truncated document', valid.slice(0, 400)],
      ['valid base64 of something else', Buffer.from('<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE></HOOK_MESSAGE>').toString('base64')],
      ['nothing at all', ''],
    ];
    for (const [what, template] of cases) {
      const run = await runPublisher([template, 'vm-shutdown'], env);
      assert.equal(run.code, EXIT_DATAERR, `${what}: exit ${run.code}, stderr ${run.stderr}`);
      assert.match(run.stderr, /\$TEMPLATE/, what);
    }
    const viaStdin = await runPublisher([], env, 'bm90IGEgVk0= vm-shutdown extra');
    assert.equal(viaStdin.code, EXIT_DATAERR, viaStdin.stderr);
    assert.deepEqual(await spoolEntries(spool), []);
    await assertNothingPublished(queue);
  });
});
