// The consumer's handler decides every message's end: decode failures are
// dead-lettered whatever was thrown, an apply failure while the ledger is
// down goes back to the broker uncounted, one while the ledger answers is
// retried with a counted header and dead-lettered at the limit.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { deliveryHandler, type LedgerAvailability } from '../../operator/intake/pipeline.ts';
import type { Delivery } from '../../operator/intake/amqp.ts';
import type { Recorded, ApplyOutcome } from '../../operator/ledger/apply.ts';
import { silentLogger } from '../../operator/log.ts';
import { unknownFieldPaths } from '../../operator/resources/unknown-fields.ts';
import { neutronFloatingIp } from '../sim/openstack-messages.ts';

type Verdict = { kind: 'ack' } | { kind: 'requeue' } | { kind: 'dead'; reason: string; detail: string } | { kind: 'retry'; error: string };

function delivery(body: string | Buffer, attempts = 0): { d: Delivery; verdicts: Verdict[] } {
  const verdicts: Verdict[] = [];
  const d: Delivery = {
    body: typeof body === 'string' ? Buffer.from(body) : body,
    info: { exchange: 'neutron', routingKey: 'notifications.info', messageId: undefined, timestamp: undefined, headers: {}, contentType: undefined, redelivered: false, receivedAt: new Date(), attempts },
    ack: () => { verdicts.push({ kind: 'ack' }); return true; },
    requeue: () => { verdicts.push({ kind: 'requeue' }); return true; },
    deadLetter: async (reason, detail) => { verdicts.push({ kind: 'dead', reason, detail }); return true; },
    retry: async (error) => { verdicts.push({ kind: 'retry', error }); return true; },
  };
  return { d, verdicts };
}

const good = neutronFloatingIp({ id: 'f1', address: '192.0.2.1', network: 'ext', project: 'p' }, 'update.end', new Date(), { portId: 'port-1' }, 'm-1');
const applying = (outcome: ApplyOutcome = 'applied') => ({ apply: async (_r: Recorded) => outcome });
const failing = { apply: async (_r: Recorded): Promise<ApplyOutcome> => { throw new Error('constraint violated'); } };
const ledger = (up: boolean): LedgerAvailability & { asked: number } => ({ up, asked: 0, async isOutage() { this.asked += 1; return !up; } });

describe('delivery verdicts', () => {
  it('applied → ack', async () => {
    const { d, verdicts } = delivery(good);
    await deliveryHandler('c', applying(), silentLogger)(d);
    assert.deepEqual(verdicts, [{ kind: 'ack' }]);
  });

  it('undecodable → dead-letter with the reason; a body over the limit is not read', async () => {
    const bad = delivery('{"oslo.version":"2.0"');
    await deliveryHandler('c', applying(), silentLogger)(bad.d);
    assert.equal(bad.verdicts[0]?.kind === 'dead' && bad.verdicts[0].reason, 'not-json');
    const big = delivery(Buffer.alloc(2048, 0x41));
    await deliveryHandler('c', applying(), silentLogger, {}, { limits: { maxBodyBytes: 1024 } })(big.d);
    assert.equal(big.verdicts[0]?.kind === 'dead' && big.verdicts[0].reason, 'too-large');
  });

  it('apply failing while the ledger answers: retried with a count, dead-lettered at the limit', async () => {
    const l = ledger(true);
    for (let attempts = 0; attempts < 3; attempts++) {
      const { d, verdicts } = delivery(good, attempts);
      await deliveryHandler('c', failing, silentLogger, {}, { maxAttempts: 3, ledger: l })(d);
      if (attempts < 2) assert.deepEqual(verdicts, [{ kind: 'retry', error: 'Error: constraint violated' }]);
      else {
        assert.equal(verdicts.length, 1);
        const v = verdicts[0];
        assert.ok(v?.kind === 'dead');
        assert.equal(v.reason, 'apply-failed');
        assert.match(v.detail, /apply failed 3 times; last error: Error: constraint violated/);
      }
    }
    assert.equal(l.asked, 3);
  });

  it('apply failing because the ledger is down: back to the broker, not counted', async () => {
    const { d, verdicts } = delivery(good, 4);
    await deliveryHandler('c', failing, silentLogger, {}, { maxAttempts: 5, ledger: ledger(false) })(d);
    assert.deepEqual(verdicts, [{ kind: 'requeue' }]);
  });

  it('while the ledger is known down, nothing is attempted', async () => {
    const { d, verdicts } = delivery(good);
    let applied = 0;
    await deliveryHandler('c', { apply: async () => { applied += 1; return 'applied' as const; } }, silentLogger, {}, { ledger: { up: false, isOutage: async () => true } })(d);
    assert.deepEqual(verdicts, [{ kind: 'requeue' }]);
    assert.equal(applied, 0);
  });
});

describe('unknown resource fields', () => {
  it('names every key the schema dropped, with its path', () => {
    const input = { amqp: { prefech: 5, exchanges: [{ name: 'nova', nme: 'x' }] }, typo: true };
    const parsed = { amqp: { prefetch: 200, exchanges: [{ name: 'nova', durable: false }] } };
    assert.deepEqual(unknownFieldPaths(input, parsed, 'spec'), ['spec.amqp.prefech', 'spec.amqp.exchanges[0].nme', 'spec.typo']);
    assert.deepEqual(unknownFieldPaths({ a: 1 }, { a: 1, b: 2 }), []);
  });
});
