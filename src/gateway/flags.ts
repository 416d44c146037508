/**
 * Feature flags on the request path: which flags a request is in, what they change about its model, and how the
 * request is labelled in metrics and headers.
 *
 * Assignment follows OpenFeature flagd's fractional rollouts: a sticky key (the end user, or the client) is hashed
 * with the flag's name into one of 10,000 buckets, and the request is in the flag when its bucket is below the
 * flag's percentage. So a caller keeps its variant from request to request, replica to replica and release to
 * release; raising a rollout from 10% to 25% only adds callers (nobody flips back to the baseline mid-rollout); and
 * the flag's name in the hash makes different flags independent draws instead of the same 10% of users every time.
 *
 * The hash is MurmurHash3 (x86, 32-bit, seed 0) over the UTF-8 bytes of `<flag>:<key>`, the family flagd uses:
 * - stable: a published algorithm with published test vectors, so it cannot drift between releases unnoticed, and
 *   any tool (Python's `mmh3`, Go's `murmur3`) can tell which bucket a user is in: `mmh3.hash(s, signed=False) %
 *   10000`;
 * - uniform: its finaliser avalanches every input bit into every output bit, so similar keys (`user-1`, `user-2`)
 *   land in unrelated buckets; `% 10000` of a uniform 32-bit value is off by at most 1 in 429,497 per bucket;
 * - cheap: about 0.2 µs per flag, allocating little more than the key string; SHA-256 through node:crypto took
 *   ten times as long, with a hash object and a digest buffer per call.
 * A cryptographic hash would buy nothing here: the hash has no secret, so a caller who wants a given variant can
 * search for a `user` value that lands in it whatever the hash is.
 */
import type { CompiledFlag, CompiledModel } from '../api/gateway-config.js';
import { BASELINE_VARIANT } from '../api/metric-names.js';
import type { FallbackStep } from '../api/schema.js';

/** Buckets per flag: a percentage step is 100 buckets, and room remains for finer shares than whole percents. */
export const BUCKETS = 10_000;

/** Request header naming the end user, for clients that cannot set the OpenAI `user` field. */
export const USER_HEADER = 'x-llmroute-user';

/** Response header naming the flags applied to the request, in the order they were applied. */
export const FLAGS_HEADER = 'x-llmroute-flags';

const encoder = new TextEncoder();
/** Reused for every key that fits, so hashing allocates nothing; the gateway is single-threaded, so none races. */
const scratch = new Uint8Array(1024);

/** MurmurHash3 x86_32 of the UTF-8 encoding of `text` (lone surrogates as U+FFFD, like TextEncoder), unsigned. */
export function murmur3(text: string, seed = 0): number {
  const fit = encoder.encodeInto(text, scratch);
  const bytes = fit.read === text.length ? scratch : encoder.encode(text);
  const length = bytes === scratch ? fit.written : bytes.length;
  let h = seed >>> 0;
  let i = 0;
  for (; i + 4 <= length; i += 4) {
    const block = (bytes[i] as number) | ((bytes[i + 1] as number) << 8) | ((bytes[i + 2] as number) << 16) | ((bytes[i + 3] as number) << 24);
    h ^= scramble(block);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let tail = 0;
  for (let shift = 0; i < length; i++, shift += 8) tail |= (bytes[i] as number) << shift;
  if (length & 3) h ^= scramble(tail);
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function scramble(k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, 0x1b873593);
}

/**
 * The bucket, in [0, 10000), of `stickyKey` for `flagName`. The `:` cannot occur in a flag name (a DNS label), so
 * distinct (flag, key) pairs never hash the same text.
 */
export function bucket(flagName: string, stickyKey: string): number {
  return murmur3(`${flagName}:${stickyKey}`) % BUCKETS;
}

/** Whether `stickyKey` is in the flag at its current percentage: the lowest `percent` buckets are in, so growing it only adds keys. */
export function inFlag(flag: Pick<CompiledFlag, 'name' | 'percent'>, stickyKey: string): boolean {
  return bucket(flag.name, stickyKey) < flag.percent * (BUCKETS / 100);
}

/** What the request tells about its caller, the inputs of flag assignment. */
export interface FlagRequest {
  /** The model the client asked for: only flags that override it are evaluated. */
  model: string;
  /** The OpenAI `user` field of the body. */
  user?: string;
  /** The `x-llmroute-user` header. */
  header?: string;
  /** The authenticated client (`anonymous` with `auth: none`, where client-sticky flags are refused by validation). */
  client: string;
  requestId: string;
}

/**
 * Where a user-sticky flag's key came from. `request` means the caller named no user, so the request id stood in:
 * each request is then a fresh coin flip. The flag's metrics stay a fair random sample, but that caller sees the two
 * variants alternate, which is why logs should say so and callers should send `user`.
 */
export type UserKeyKind = 'user' | 'header' | 'request';

/**
 * The key of user-sticky flags. An empty string counts as no user: otherwise every caller that sends `user: ""`
 * would share one bucket, all in or all out of each flag.
 */
export function userKey(request: Pick<FlagRequest, 'user' | 'header' | 'requestId'>): { key: string; kind: UserKeyKind } {
  if (request.user) return { key: request.user, kind: 'user' };
  if (request.header) return { key: request.header, kind: 'header' };
  return { key: request.requestId, kind: 'request' };
}

export interface FlagSelection {
  /** The flags the request is in that override its model, in config order: on conflicts the later one wins. */
  flags: CompiledFlag[];
  /** The key user-sticky flags were evaluated with; undefined when no user-sticky flag overrides the model. */
  userKey: UserKeyKind | undefined;
}

/** The overrides `flag` makes to `model`, if any; `hasOwn` so that a model named `constructor` is not overridden by Object.prototype. */
function overridesOf(flag: CompiledFlag, model: string) {
  const models = flag.set.models;
  return models && Object.hasOwn(models, model) ? models[model] : undefined;
}

/**
 * The flags that apply to a request: those overriding its model whose percentage includes its sticky key. Flags
 * that leave the model alone are skipped before hashing: they would change nothing, and counting the request in
 * them would dilute their metrics with traffic they never touched. One hash per remaining flag.
 */
export function selectFlags(flags: readonly CompiledFlag[], request: FlagRequest): FlagSelection {
  const applied: CompiledFlag[] = [];
  let user: { key: string; kind: UserKeyKind } | undefined;
  for (const flag of flags) {
    if (!overridesOf(flag, request.model)) continue;
    let key = request.client;
    if (flag.stickyBy === 'user') {
      user ??= userKey(request);
      key = user.key;
    }
    if (inFlag(flag, key)) applied.push(flag);
  }
  return { flags: applied, userKey: user?.kind };
}

/**
 * `model` as the applied flags change it, field by field, later flags winning. The result is resolved the way the
 * compiler resolves a model: a flag's fallback steps without a `model` ask for the final pin, and when only the pin
 * changes, the steps that used the old pin follow it while steps naming their own model keep it. Never mutates
 * `model`; returns it as is when no flag overrides it, so baseline requests allocate nothing.
 *
 * The compiled config has already replaced each step's missing `model` with the pin, so a step counts as using
 * the pin when it asks for the pin's snapshot. A step that named that same snapshot explicitly is moved with the
 * pin too: the two cannot be told apart here.
 */
export function applyFlags(model: CompiledModel, flags: readonly CompiledFlag[]): CompiledModel {
  let overridden = false;
  let pin = model.pin;
  let maxInputTokens = model.maxInputTokens;
  let maxOutputTokens = model.maxOutputTokens;
  let fallback: FallbackStep[] | undefined;
  for (const flag of flags) {
    const set = overridesOf(flag, model.name);
    if (!set) continue;
    overridden = true;
    pin = set.pin ?? pin;
    maxInputTokens = set.maxInputTokens ?? maxInputTokens;
    maxOutputTokens = set.maxOutputTokens ?? maxOutputTokens;
    fallback = set.fallback ?? fallback;
  }
  if (!overridden) return model;
  const result: CompiledModel = {
    ...model,
    pin,
    fallback: fallback
      ? fallback.map((step) => ({ provider: step.provider, model: step.model ?? pin }))
      : model.fallback.map((step) => (step.model === model.pin ? { provider: step.provider, model: pin } : step)),
  };
  if (maxInputTokens !== undefined) result.maxInputTokens = maxInputTokens;
  if (maxOutputTokens !== undefined) result.maxOutputTokens = maxOutputTokens;
  return result;
}

/**
 * The metrics `variant` label of a request: `baseline` outside every flag, the flag's name inside one, and the names
 * joined with `+` in application order inside several (`+` cannot occur in a flag name, and `baseline` is refused as
 * one, so no two cases share a value). Cardinality: one value per combination of flags that actually co-occur on a
 * model, so at most 2^k for k flags overriding the same model: 2 values for one flag, 4 for two, and in the worst
 * case the schema allows (LIMITS.flags = 16 flags all on one model, all partly rolled out) 65,536. Routes should
 * keep overlapping flags on a model to a few. Pass the flags selected for the request's model (`selectFlags`).
 */
export function variantLabel(applied: readonly Pick<CompiledFlag, 'name'>[]): string {
  return applied.length === 0 ? BASELINE_VARIANT : joinNames(applied, '+');
}

/** The `x-llmroute-flags` value, e.g. `a,b`; undefined when no flag applies, so the header is left out. */
export function flagsHeader(applied: readonly Pick<CompiledFlag, 'name'>[]): string | undefined {
  return applied.length === 0 ? undefined : joinNames(applied, ',');
}

function joinNames(applied: readonly Pick<CompiledFlag, 'name'>[], separator: string): string {
  return applied.map((flag) => flag.name).join(separator);
}
