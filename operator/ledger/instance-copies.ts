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
import { INSTANCE_CARRIED_COLUMNS, copyOf } from './trace-index.ts';

/** An instance column and its copy on address_intervals. */
export const INSTANCE_COPIES: ReadonlyArray<{ column: string; copy: string; type: 'text' | 'bigint' }> = INSTANCE_CARRIED_COLUMNS.map((column) => ({
  column,
  copy: copyOf(column),
  type: ['deleted_at', 'user_name_at', 'project_name_at', 'gone_after', 'gone_by'].includes(column) ? 'bigint' : 'text',
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
  const changed = present.map((c) => `NEW.${c.column} IS ${engine === 'postgres' ? 'DISTINCT FROM' : 'NOT'} OLD.${c.column}`).join(' OR ');
  if (engine === 'sqlite') {
    const fromInstance = (row: string) => `UPDATE address_intervals SET (${copies}) = (SELECT ${columns} FROM instances WHERE cloud = ${row}.cloud AND instance_id = ${row}.instance_id)
        WHERE id = ${row}.id;`;
    const toIntervals = (value: (c: string) => string) => `UPDATE address_intervals SET (${copies}) = (${present.map((c) => value(c.column)).join(', ')})
        WHERE cloud = OLD_OR_NEW.cloud AND instance_id = OLD_OR_NEW.instance_id;`;
    return [
      ...drop,
      // SQLite's triggers cannot change the row being inserted: the interval is updated after, only when its instance is known.
      `CREATE TRIGGER ${TRIGGERS.intervalInsert} AFTER INSERT ON address_intervals
        WHEN NEW.instance_id IS NOT NULL AND EXISTS (SELECT 1 FROM instances WHERE cloud = NEW.cloud AND instance_id = NEW.instance_id)
      BEGIN ${fromInstance('NEW')} END`,
      `CREATE TRIGGER ${TRIGGERS.intervalUpdate} AFTER UPDATE OF cloud, instance_id ON address_intervals
      BEGIN ${fromInstance('NEW')} END`,
      `CREATE TRIGGER ${TRIGGERS.instanceInsert} AFTER INSERT ON instances
      BEGIN ${toIntervals((c) => `NEW.${c}`).replaceAll('OLD_OR_NEW', 'NEW')} END`,
      `CREATE TRIGGER ${TRIGGERS.instanceUpdate} AFTER UPDATE ON instances WHEN ${changed}
      BEGIN ${toIntervals((c) => `NEW.${c}`).replaceAll('OLD_OR_NEW', 'NEW')} END`,
      `CREATE TRIGGER ${TRIGGERS.instanceDelete} AFTER DELETE ON instances
      BEGIN ${toIntervals(() => 'NULL').replaceAll('OLD_OR_NEW', 'OLD')} END`,
    ];
  }
  const into = present.map((c) => `NEW.${c.copy}`).join(', ');
  const set = (value: (c: string) => string) => present.map((c) => `${c.copy} = ${value(c.column)}`).join(', ');
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
    `CREATE OR REPLACE FUNCTION instances_copy() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'DELETE' THEN
        UPDATE address_intervals SET ${set(() => 'NULL')} WHERE cloud = OLD.cloud AND instance_id = OLD.instance_id;
      ELSE
        UPDATE address_intervals SET ${set((c) => `NEW.${c}`)} WHERE cloud = NEW.cloud AND instance_id = NEW.instance_id;
      END IF;
      RETURN NULL;
    END $$`,
    `CREATE TRIGGER ${TRIGGERS.instanceInsert} AFTER INSERT OR DELETE ON instances FOR EACH ROW EXECUTE FUNCTION instances_copy()`,
    `CREATE TRIGGER ${TRIGGERS.instanceUpdate} AFTER UPDATE ON instances FOR EACH ROW WHEN (${changed}) EXECUTE FUNCTION instances_copy()`,
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
