// Cloud status: whether its broker and Ceph are reachable, whether deletions
// in its pools go to the trash, whether its queue is consumed, and what the
// ledger holds for it. Starting and stopping consumers happens on every
// replica (kube-mode.ts); this controller only reports, on the leader.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../../ledger/schema.ts';
import type { Operator } from '../../operator.ts';
import type { Cloud } from '../../resources/cloud.ts';
import { TemporaryError, type Controller } from '../runtime/index.ts';
import type { ConditionUpdate } from '../runtime/status.ts';
import { latestPasses } from '../../ledger/observe.ts';
import { reconciledStatus } from '../../reconcile/condition.ts';

export function cloudController(operator: Operator, db: Kysely<LedgerSchema>, everyMs = 30_000): Controller<Cloud> {
  return {
    kind: 'Cloud',
    async reconcile(cloud, ctx) {
      const name = cloud.metadata.name;
      const rt = operator.clouds.get(name);
      if (rt === undefined) throw new TemporaryError(`cloud ${name} is not started on this replica yet`, 2_000, { reason: 'Starting' });
      const conditions: ConditionUpdate[] = [];
      const depth = await rt.intake.consumer.queueDepth().catch(() => undefined);
      let cephOk = true;
      let cephMessage = 'no ceph section: addresses are traced, disks are not captured';
      let trash: ConditionUpdate = { type: 'TrashArmed', status: 'Unknown', reason: 'NoCeph', message: cephMessage };
      if (rt.capture !== undefined) {
        try {
          // Read only: the pools are armed once, by the leader, not at every status refresh.
          const arming = await rt.capture.trashSettings();
          for (const a of arming) operator.metrics.trashArmed.set({ cloud: name, pool: a.pool }, a.moveToTrashOnRemove ? 1 : 0);
          const off = arming.filter((a) => !a.moveToTrashOnRemove).map((a) => a.pool);
          trash = off.length === 0
            ? { type: 'TrashArmed', status: 'True', reason: 'Armed', message: `rbd_move_to_trash_on_remove is on for ${arming.map((a) => a.pool).join(', ')}` }
            : { type: 'TrashArmed', status: 'False', reason: 'Disarmed', message: `rbd_move_to_trash_on_remove is off for ${off.join(', ')}: deletions there skip the trash (set spec.ceph.trash.arm or run rbd config pool set)` };
          cephMessage = 'Ceph answers';
        } catch (err) {
          cephOk = false;
          cephMessage = `Ceph: ${err instanceof Error ? err.message : String(err)}`;
          trash = { type: 'TrashArmed', status: 'Unknown', reason: 'CephUnreachable', message: cephMessage };
        }
      }
      const amqpOk = depth !== undefined;
      conditions.push({
        type: 'Connected', status: amqpOk && cephOk ? 'True' : 'False', reason: amqpOk ? (cephOk ? 'Connected' : 'CephUnreachable') : 'BrokerUnreachable',
        message: `${amqpOk ? 'broker connected' : 'broker not connected'}; ${cephMessage}`,
      });
      conditions.push(trash);
      const ae = rt.intake.consumer.alternateExchange;
      if (rt.cloud.spec.amqp.alternateExchange !== '') {
        conditions.push(ae === undefined
          ? { type: 'UnroutableCaptured', status: 'Unknown', reason: 'NotChecked', message: 'the alternate-exchange policy has not been checked yet' }
          : ae.missing.length === 0
            ? { type: 'UnroutableCaptured', status: 'True', reason: 'PolicyInPlace', message: `unroutable notifications reach ${rt.cloud.spec.amqp.alternateExchange}` }
            : { type: 'UnroutableCaptured', status: 'False', reason: 'PolicyMissing', message: `no alternate-exchange policy sends unroutable messages of ${ae.missing.join(', ')} to ${rt.cloud.spec.amqp.alternateExchange}: what the cloud publishes while our bindings are gone after a broker restart is lost (see docs/cloud-operators.md)` });
      }
      if (rt.ceph !== undefined) {
        conditions.push(rt.ceph.fallback === undefined
          ? { type: 'CephDriver', status: 'True', reason: rt.ceph.driver === 'librbd' ? 'Librbd' : 'Cli', message: rt.ceph.driver === 'librbd' ? 'librbd in-process, one open connection' : 'rbd CLI, one process per call (spec.ceph.driver: cli)' }
          : { type: 'CephDriver', status: 'False', reason: 'LibrbdUnavailable', message: rt.ceph.fallback });
      }
      const ledger = operator.ledgerHealth.state;
      if (!ledger.up) {
        // Intake is paused: the notifications wait in the broker, nothing is lost.
        conditions.push({ type: 'Consuming', status: 'False', reason: 'LedgerUnreachable', message: `paused since ${ledger.since.toISOString()}: the ledger database does not answer (${ledger.error}); notifications wait in queue ${rt.intake.consumer.queue}` });
        await ctx.status({ conditions, fields: {} });
        return { requeueAfterMs: Math.min(everyMs, 5_000) };
      }
      conditions.push({ type: 'Consuming', status: amqpOk ? 'True' : 'False', reason: amqpOk ? 'Consuming' : 'NotConsuming', message: amqpOk ? `queue ${rt.intake.consumer.queue}: ${depth} waiting` : 'not consuming' });
      const count = async (table: 'notifications' | 'instances' | 'quarantines') => Number((await db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).where('cloud', '=', name).executeTakeFirstOrThrow()).n);
      const last = await db.selectFrom('notifications').select((eb) => eb.fn.max<number>('received_at').as('t')).where('cloud', '=', name).executeTakeFirst();
      const reconciled = reconciledStatus(rt.reconcile !== undefined, await latestPasses(db, name));
      conditions.push(reconciled.condition);
      await ctx.status({
        conditions,
        fields: {
          ...(reconciled.field === undefined ? {} : { reconciliation: reconciled.field }),
          ...(last?.t === null || last?.t === undefined ? {} : { lastEventAt: new Date(Number(last.t)).toISOString() }),
          counts: { notifications: await count('notifications'), instances: await count('instances'), quarantines: await count('quarantines') },
        },
      });
      return { requeueAfterMs: everyMs };
    },
  };
}
