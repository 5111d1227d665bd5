// Where the audit key comes from: a file (a mounted Kubernetes Secret, or a
// file in standalone mode) or the environment. The key never enters the
// database; each row stores only the key's fingerprint.
import { readFileSync } from 'node:fs';
import { auditKeyRing, AuditKeyError, type AuditKeyRing } from './audit.ts';
import { parseDbUrl } from './db.ts';

/**
 * `--audit-key-file` / QUARANTINE_AUDIT_KEY_FILE: one key per line, the first
 * signs new rows and the others (older keys, after a rotation) only verify.
 * QUARANTINE_AUDIT_KEY: a single key. Neither: the trail stays unkeyed.
 */
export function loadAuditKeys(env: NodeJS.ProcessEnv, file?: string): AuditKeyRing | undefined {
  const path = file ?? (env['QUARANTINE_AUDIT_KEY_FILE'] === '' ? undefined : env['QUARANTINE_AUDIT_KEY_FILE']);
  if (path !== undefined) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new AuditKeyError(`cannot read the audit key file ${path}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const keys = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    if (keys.length === 0) throw new AuditKeyError(`the audit key file ${path} holds no key`);
    return auditKeyRing(keys);
  }
  const single = env['QUARANTINE_AUDIT_KEY']?.trim();
  return single === undefined || single === '' ? undefined : auditKeyRing([single]);
}

/** Standalone default for the anchor file: beside an SQLite ledger (move it elsewhere with QUARANTINE_AUDIT_ANCHOR_FILE). */
export function anchorFileFor(dbUrl: string, env: NodeJS.ProcessEnv, explicit?: string): string | undefined {
  const given = explicit ?? env['QUARANTINE_AUDIT_ANCHOR_FILE'];
  if (given !== undefined && given !== '') return given;
  const target = parseDbUrl(dbUrl);
  return target.engine === 'sqlite' && target.path !== ':memory:' ? `${target.path}.audit-anchors` : undefined;
}

export function anchorIntervalMs(env: NodeJS.ProcessEnv): number {
  const v = env['QUARANTINE_AUDIT_ANCHOR_INTERVAL_SECONDS'];
  if (v === undefined || v === '') return 60_000;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new AuditKeyError(`QUARANTINE_AUDIT_ANCHOR_INTERVAL_SECONDS="${v}" is not a number of seconds`);
  return n * 1000;
}
