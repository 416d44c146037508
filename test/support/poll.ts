/** Polling for tests: a condition checked until it holds or the time is up. */

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** What was awaited, for the timeout error. */
  message?: string;
}

/**
 * Calls `fn` until it returns a truthy value (returned) or the time is up (throws with `message` and the last error
 * `fn` threw, if any). Errors from `fn` count as "not yet".
 */
export async function waitFor<T>(fn: () => T | Promise<T>, { timeoutMs = 30_000, intervalMs = 200, message = 'condition' }: WaitOptions = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const cause = lastError instanceof Error ? `: last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}${cause}`);
    }
    await new Promise((done) => setTimeout(done, intervalMs));
  }
}
