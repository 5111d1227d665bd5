// A ledger where the intake has applied an instance's deletion and left its
// derivation to a pass that has not run yet (derive-pending.ts): vm-1 created
// with 10.0.0.5 and a floating IP, both derived; then its deletion and the
// floating IP's release at minute 10, pending.
import { applyBatch } from '../../operator/ledger/apply.ts';
import type { LedgerDb } from '../../operator/ledger/db.ts';
import { at, fipEvent, fixed, instanceEvent, notification, portEvent } from './events.ts';

export const ADDRESS = '10.0.0.5';
export const FLOATING = '188.185.194.218';

export const iso = (minute: number): string => at(minute).toISOString();

export async function seedPendingDeletion(ledger: LedgerDb): Promise<void> {
  const applied = (events: Parameters<typeof notification>[0], minute: number) => ({ notification: notification(events, at(minute)), body: '{}' });
  await applyBatch(ledger.db, [
    applied([portEvent('create.end', { id: 'port-1', deviceId: 'vm-1', deviceOwner: 'compute:nova', fixedIps: [{ address: ADDRESS, subnetId: 's-1' }] })], 0),
    applied([instanceEvent('create.end', { id: 'vm-1' }, [fixed(ADDRESS, 'port-1')])], 1),
    applied([fipEvent('update.end', { id: 'fip-1', address: FLOATING, portId: 'port-1', fixedAddress: ADDRESS })], 2),
  ]);
  await applyBatch(ledger.db, [
    applied([instanceEvent('delete.end', { id: 'vm-1' })], 10),
    applied([fipEvent('update.end', { id: 'fip-1', address: FLOATING, portId: null })], 10),
  ], undefined, { deferDerivation: { at: Date.now() } });
}
