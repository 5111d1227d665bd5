// The Cloud's `Reconciled` condition and status field, decided from the
// latest pass of each listing as the ledger recorded it (so whichever replica
// leads reports the same thing).
import { DRIFT_KINDS, driftTotal, emptyDrift, type Drift } from '../domain/inventory.ts';
import type { PassSummary } from '../ledger/observe.ts';

export interface ReconciledStatus {
  condition: { type: 'Reconciled'; status: 'True' | 'False' | 'Unknown'; reason: string; message: string };
  field: { lastPassAt?: string; drift?: Record<string, { added: number; closed: number }> } | undefined;
}

const describe = (d: Drift): string => DRIFT_KINDS.flatMap((k) => [
  ...(d[k].added > 0 ? [`${d[k].added} ${k} added`] : []),
  ...(d[k].closed > 0 ? [`${d[k].closed} ${k} closed`] : []),
]).join(', ');

export function reconciledStatus(configured: boolean, passes: readonly PassSummary[]): ReconciledStatus {
  if (!configured) {
    return { condition: { type: 'Reconciled', status: 'Unknown', reason: 'NoApi', message: 'no API configured (spec.api / spec.xmlrpc) or spec.reconcile.enabled is false: lost notifications go unnoticed' }, field: undefined };
  }
  if (passes.length === 0) return { condition: { type: 'Reconciled', status: 'Unknown', reason: 'NoPassYet', message: 'no reconciliation pass has run yet' }, field: undefined };
  const drift = emptyDrift();
  for (const p of passes) for (const k of DRIFT_KINDS) { drift[k].added += p.drift[k]?.added ?? 0; drift[k].closed += p.drift[k]?.closed ?? 0; }
  const last = Math.max(...passes.map((p) => p.startedAt));
  const at = new Date(last).toISOString();
  const field = { lastPassAt: at, drift: Object.fromEntries(DRIFT_KINDS.map((k) => [k, drift[k]])) };
  const failed = passes.filter((p) => p.outcome !== 'ok');
  if (failed.length > 0) {
    return { condition: { type: 'Reconciled', status: 'False', reason: 'ListingFailed', message: failed.map((p) => `${p.listing}: ${p.error ?? 'failed'}`).join('; ') }, field };
  }
  const total = driftTotal(drift);
  if (total > 0) {
    return { condition: { type: 'Reconciled', status: 'False', reason: 'Drift', message: `the pass of ${at} had to add or close ${total} fact(s) the notifications missed (${describe(drift)}): notifications from this cloud are being lost` }, field };
  }
  return { condition: { type: 'Reconciled', status: 'True', reason: 'NoDrift', message: `the pass of ${at} found the ledger in agreement with the API` }, field };
}
