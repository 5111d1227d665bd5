// Each address interval carries a copy of the columns the trace shows of its
// instance (migration 0018), so that the trace index answers a holder whole.
//
// A busy private address at 10M intervals has up to some 330 holders, and the
// trace looked each one's instance up in the instances index: three quarters
// of such a question on SQLite, on PostgreSQL some 10 µs a holder behind a
// Memoize that never hits. The copies are kept by triggers, on both engines,
// so that every writer of instances keeps them without knowing: apply's
// upserts, reconciliation's gone_after/gone_by, identity names, and whatever
// comes later. An interval may be written before its instance (a port's
// binding arrives first) or after it; an instance changes after its intervals
// were written (deleted_at, host, names). Intervals are re-derived by delete
// and insert, never updated, except by migrations.
//
// Plain strings, without the query builder, like trace-index.ts.
import { INSTANCE_BIGINT_COLUMNS, INSTANCE_CARRIED_COLUMNS, copyOf } from './trace-index.ts';
import { DERIVATION_LOCK } from './derive.ts';

/** An instance column and its copy on address_intervals. */
export const INSTANCE_COPIES: ReadonlyArray<{ column: string; copy: string; type: 'text' | 'bigint' }> = INSTANCE_CARRIED_COLUMNS.map((column) => ({
  column,
  copy: copyOf(column),
  type: INSTANCE_BIGINT_COLUMNS.includes(column) ? 'bigint' : 'text',
}));

const TRIGGERS = {
  intervalInsert: 'address_intervals_instance_copy',
  intervalUpdate: 'address_intervals_instance_recopy',
  instanceInsert: 'instances_copy_insert',
  instanceUpdate: 'instances_copy_update',
  instanceDelete: 'instances_copy_delete',
} as const;

/**
 * The statements that (re)create the triggers keeping the copies, for the
 * instance columns the table has (`has`): a ledger that takes 0005 or 0016,
 * which add names, after 0018 gets them again from those migrations
 * (refreshSql), and the copies of columns it lacks stay null.
 */
export function copyTriggersSql(engine: 'sqlite' | 'postgres', has: (column: string) => boolean): string[] {
  const present = INSTANCE_COPIES.filter((c) => has(c.column));
  const drop = Object.values(TRIGGERS).map((t) => `DROP TRIGGER IF EXISTS ${t}${engine === 'postgres' ? (t.startsWith('instances') ? ' ON instances' : ' ON address_intervals') : ''}`);
  if (present.length === 0) return drop;
  const copies = present.map((c) => c.copy).join(', ');
  const columns = present.map((c) => c.column).join(', ');
  if (engine === 'sqlite') {
    const changed = present.map((c) => `NEW.${c.column} IS NOT OLD.${c.column}`).join(' OR ');
    const rekeyed = 'NEW.cloud IS NOT OLD.cloud OR NEW.instance_id IS NOT OLD.instance_id';
    const fromInstance = (row: string) => `UPDATE address_intervals SET (${copies}) = (SELECT ${columns} FROM instances WHERE cloud = ${row}.cloud AND instance_id = ${row}.instance_id)
        WHERE id = ${row}.id;`;
    /** Sets the copies of the intervals of the instance `row` (NEW or OLD) names, where `also` holds. */
    const toIntervals = (value: (c: string) => string, row: 'NEW' | 'OLD', also = '') => `UPDATE address_intervals SET (${copies}) = (${present.map((c) => value(c.column)).join(', ')})
        WHERE cloud = ${row}.cloud AND instance_id = ${row}.instance_id${also === '' ? '' : ` AND (${also})`};`;
    return [
      ...drop,
      // SQLite's triggers cannot change the row being inserted: the interval is updated after, only when its instance is known.
      `CREATE TRIGGER ${TRIGGERS.intervalInsert} AFTER INSERT ON address_intervals
        WHEN NEW.instance_id IS NOT NULL AND EXISTS (SELECT 1 FROM instances WHERE cloud = NEW.cloud AND instance_id = NEW.instance_id)
      BEGIN ${fromInstance('NEW')} END`,
      `CREATE TRIGGER ${TRIGGERS.intervalUpdate} AFTER UPDATE OF cloud, instance_id ON address_intervals
      BEGIN ${fromInstance('NEW')} END`,
      `CREATE TRIGGER ${TRIGGERS.instanceInsert} AFTER INSERT ON instances
      BEGIN ${toIntervals((c) => `NEW.${c}`, 'NEW')} END`,
      // A changed key (no writer changes one) leaves the old key's intervals without an instance.
      `CREATE TRIGGER ${TRIGGERS.instanceUpdate} AFTER UPDATE ON instances WHEN ${changed} OR ${rekeyed}
      BEGIN
        ${toIntervals(() => 'NULL', 'OLD', rekeyed)}
        ${toIntervals((c) => `NEW.${c}`, 'NEW')}
      END`,
      `CREATE TRIGGER ${TRIGGERS.instanceDelete} AFTER DELETE ON instances
      BEGIN ${toIntervals(() => 'NULL', 'OLD')} END`,
    ];
  }
  const into = present.map((c) => `NEW.${c.copy}`).join(', ');
  const set = (value: (c: string) => string) => present.map((c) => `${c.copy} = ${value(c.column)}`).join(', ');
  const unchanged = present.map((c) => `o.${c.column} IS NOT DISTINCT FROM n.${c.column}`).join(' AND ');
  // No quote in these: they go inside EXECUTE's literals.
  const fromNew = `UPDATE address_intervals AS a SET ${set((c) => `n.${c}`)} FROM new_rows AS n WHERE a.cloud = n.cloud AND a.instance_id = n.instance_id`;
  const fromOld = `UPDATE address_intervals AS a SET ${set(() => 'NULL')} FROM old_rows AS o WHERE a.cloud = o.cloud AND a.instance_id = o.instance_id`;
  return [
    ...drop,
    // A BEFORE trigger sets the copies on the row as it is written: no second write.
    `CREATE OR REPLACE FUNCTION address_intervals_instance_copy() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      SELECT ${columns} INTO ${into} FROM instances WHERE cloud = NEW.cloud AND instance_id = NEW.instance_id;
      RETURN NEW;
    END $$`,
    `CREATE TRIGGER ${TRIGGERS.intervalInsert} BEFORE INSERT OR UPDATE OF cloud, instance_id ON address_intervals
      FOR EACH ROW EXECUTE FUNCTION address_intervals_instance_copy()`,
    // One statement per writing statement, not per row: apply upserts a batch's
    // instances at once. Planned each time (EXECUTE): a plan that PL/pgSQL
    // caches for the session is made once, and one made while address_intervals
    // was small scans it whole ever after (on a fresh ledger's first 20,000
    // notifications, 3.2 of 14 s of apply went to that scan).
    // A key present on one side only (an instance's key changed) counts as gone or new.
    // The derivation lock, shared, before any interval is touched: a derivation
    // that is inserting intervals of these instances commits first, so that
    // the updates below see its rows (derive.ts, DERIVATION_LOCK).
    `CREATE OR REPLACE FUNCTION instances_copy() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_advisory_xact_lock_shared(${DERIVATION_LOCK});
      IF TG_OP = 'INSERT' THEN
        EXECUTE '${fromNew}';
      ELSIF TG_OP = 'UPDATE' THEN
        EXECUTE '${fromOld} AND NOT EXISTS (SELECT 1 FROM new_rows AS n WHERE n.cloud = o.cloud AND n.instance_id = o.instance_id)';
        EXECUTE '${fromNew} AND NOT EXISTS (SELECT 1 FROM old_rows AS o WHERE o.cloud = n.cloud AND o.instance_id = n.instance_id AND ${unchanged})';
      ELSE
        EXECUTE '${fromOld}';
      END IF;
      RETURN NULL;
    END $$`,
    `CREATE TRIGGER ${TRIGGERS.instanceInsert} AFTER INSERT ON instances REFERENCING NEW TABLE AS new_rows
      FOR EACH STATEMENT EXECUTE FUNCTION instances_copy()`,
    `CREATE TRIGGER ${TRIGGERS.instanceUpdate} AFTER UPDATE ON instances REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
      FOR EACH STATEMENT EXECUTE FUNCTION instances_copy()`,
    `CREATE TRIGGER ${TRIGGERS.instanceDelete} AFTER DELETE ON instances REFERENCING OLD TABLE AS old_rows
      FOR EACH STATEMENT EXECUTE FUNCTION instances_copy()`,
  ];
}

/** Sets every interval's copies from its instance (null where there is none, or the column is absent). */
export function backfillSql(engine: 'sqlite' | 'postgres', has: (column: string) => boolean): string {
  const present = INSTANCE_COPIES.filter((c) => has(c.column));
  if (engine === 'postgres') {
    return `UPDATE address_intervals AS a SET ${present.map((c) => `${c.copy} = i.${c.column}`).join(', ')}
      FROM instances AS i WHERE i.cloud = a.cloud AND i.instance_id = a.instance_id`;
  }
  return `UPDATE address_intervals SET ${present.map((c) => `${c.copy} = i.${c.column}`).join(', ')}
    FROM instances AS i WHERE i.cloud = address_intervals.cloud AND i.instance_id = address_intervals.instance_id`;
}
