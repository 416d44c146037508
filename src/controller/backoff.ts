/** `baseMs * 2^failures`, capped at `maxMs`: the per-key work-queue delay and the informer's restart delay. */
export function exponentialDelay(baseMs: number, maxMs: number, failures: number): number {
  // 2 ** failures becomes Infinity long before failures overflows, and Math.min absorbs that.
  return Math.min(maxMs, baseMs * 2 ** failures);
}
