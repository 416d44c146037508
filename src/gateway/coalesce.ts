/**
 * Coalescing of identical in-flight requests: when a client sends a request while the very same one is still
 * waiting on a provider (a retry storm, a page rendered twice, several pods warming the same prompt), the later
 * callers wait for the first one's answer instead of paying for it again. Only NON-streaming requests: a stream's
 * chunks go to one response as they arrive and cannot be handed to a second one that joins halfway.
 *
 * Nothing is cached: an entry lives while its request is in flight and is gone the moment it settles, so no caller
 * ever gets an answer that was complete before it asked.
 */
import { createHash } from 'node:crypto';
import type { ChatRequest } from './types.js';

export interface Coalesced<T> {
  value: T;
  /** False for the caller that ran the request, true for those that joined it: they cost nothing upstream. */
  shared: boolean;
}

/**
 * In-flight requests by key. Joined callers get the very value (or error) of the first caller, by reference: treat
 * it as read-only. The first caller's `fn` runs for them all, so it must not be cancelled when that caller alone
 * disconnects. Holds one entry per distinct request in flight, so its size is bounded by the gateway's concurrency.
 */
export class Coalescer<T> {
  private readonly inFlight = new Map<string, Promise<T>>();

  async run(key: string, fn: () => Promise<T>): Promise<Coalesced<T>> {
    const pending = this.inFlight.get(key);
    if (pending) return { value: await pending, shared: true };
    // `new Promise` turns a synchronous throw of `fn` into a rejection that the joined callers share too.
    const running = new Promise<T>((resolve) => resolve(fn()));
    this.inFlight.set(key, running);
    // Registered before anyone awaits `running`, so the entry is gone before any caller resumes: even the first
    // caller's own next request runs afresh. Both handlers are given, so a rejection is not reported as unhandled here.
    const forget = () => this.inFlight.delete(key);
    running.then(forget, forget);
    return { value: await running, shared: false };
  }
}

/**
 * The key under which a request may be coalesced, or undefined when it must run on its own. Safe cases:
 * - an `Idempotency-Key` header: the client says requests with that key are one request, whatever their bodies;
 * - a deterministic request: `temperature: 0` (not unset: OpenAI's default is 1), one choice (`n` unset or 1), and
 *   not streaming. Key: the SHA-256 of the body as JSON with sorted keys, so key order does not matter, plus the
 *   flag variant, because flags can give identical bodies different models (a user named by header, or none).
 *   Sampled requests never coalesce: a caller asking twice at temperature 1 may want two different answers.
 * Streaming requests never get a key, with or without an idempotency key.
 *
 * Every key includes the client, so different clients never share. Budgets, cost metrics and rate limits are per
 * client: a client served with another's answer would spend nothing while the other paid for both, and the timing
 * would tell one tenant that another had just sent the same prompt.
 */
export function coalescingKey(request: { client: string; body: ChatRequest; variant: string; idempotencyKey?: string }): string | undefined {
  const { client, body, variant, idempotencyKey } = request;
  if (body.stream === true) return undefined;
  // JSON arrays make the parts unambiguous whatever characters they hold, and the first element keeps the two kinds apart.
  if (idempotencyKey) return JSON.stringify(['idempotency', client, idempotencyKey]);
  if (body.temperature !== 0 || (body.n !== undefined && body.n !== 1)) return undefined;
  const digest = createHash('sha256').update(JSON.stringify(body, sortedKeys)).digest('hex');
  return JSON.stringify(['body', client, variant, digest]);
}

/**
 * JSON.stringify replacer that writes every object's keys in sorted order. `Object.fromEntries` defines properties
 * rather than assigning them, so a `__proto__` key in the body is kept as data instead of being dropped. (Keys that
 * look like array indices still come first, in numeric order, as JavaScript orders them; equal key sets still give
 * equal text, which is all a key needs.)
 */
function sortedKeys(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const object = value as Record<string, unknown>;
  return Object.fromEntries(Object.keys(object).sort().map((key) => [key, object[key]]));
}
