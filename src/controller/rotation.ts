/**
 * Scheduled key refresh: External Secrets Operator re-reads an ExternalSecret when its `force-sync` annotation
 * changes. The annotation's value is the time of the last request, so the schedule is read from the cluster on every
 * reconcile (level-triggered) rather than remembered by the controller.
 */
export const FORCE_SYNC_ANNOTATION = 'force-sync';

export type ForceSync = { due: true } | { due: false; inMs: number };

export function forceSyncDue(annotations: Record<string, string> | undefined, everyMs: number, now: Date): ForceSync {
  const last = Date.parse(annotations?.[FORCE_SYNC_ANNOTATION] ?? '');
  // Never requested, unreadable, or in the future (a clock that jumped back): request now.
  if (Number.isNaN(last) || last > now.getTime()) return { due: true };
  const next = last + everyMs;
  return next <= now.getTime() ? { due: true } : { due: false, inMs: next - now.getTime() };
}
