/**
 * Provider cool-downs: a provider whose quota is exhausted will not be back in seconds, so the router skips it for
 * the class's `cooldownMs` instead of spending an attempt on it per request. When every provider of a chain is
 * cooling, the earliest end is what the router reports as the client's retry-after.
 *
 * Keys are whatever the caller cools down: a provider's name, or a provider and key when only one key ran dry.
 */
export class Cooldowns {
  /** Key → when its cool-down ends. Ended entries are deleted when next looked at; there is one per key at most. */
  private readonly ends = new Map<string, number>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  /** Cools `provider` down for `ms`. A cool-down in progress is only ever extended: a short one never cuts a long one. */
  coolDown(provider: string, ms: number): void {
    const end = this.now() + ms;
    if (end > (this.ends.get(provider) ?? -Infinity)) this.ends.set(provider, end);
  }

  /** When `provider`'s cool-down ends, or `undefined` when it is in rotation. */
  endsAt(provider: string): number | undefined {
    const end = this.ends.get(provider);
    if (end === undefined) return undefined;
    if (end > this.now()) return end;
    this.ends.delete(provider);
    return undefined;
  }

  isCooling(provider: string): boolean {
    return this.endsAt(provider) !== undefined;
  }

  /** The earliest end among those of `providers` that are cooling: when the first of them is back. */
  earliestEnd(providers: Iterable<string>): number | undefined {
    let earliest: number | undefined;
    for (const provider of providers) {
      const end = this.endsAt(provider);
      if (end !== undefined && (earliest === undefined || end < earliest)) earliest = end;
    }
    return earliest;
  }

  /** Puts `provider` back in rotation at once, e.g. when a rotated key brings a fresh quota. */
  clear(provider: string): void {
    this.ends.delete(provider);
  }
}
