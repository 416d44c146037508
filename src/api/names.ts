import { createHash } from 'node:crypto';

/** A short, stable hash: for names that must fit a length limit and for config fingerprints. */
export function shortHash(text: string, length = 8): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/**
 * Joins parts into a DNS-1123 label of at most `max` characters. Names that fit are kept as they are, readable;
 * longer ones are cut and given a hash of the whole, so two long names cannot collide.
 */
export function dnsName(parts: readonly (string | number)[], max = 63): string {
  const joined = parts.join('-');
  if (joined.length <= max) return joined;
  const hash = shortHash(joined);
  return `${joined.slice(0, max - hash.length - 1).replace(/-+$/, '')}-${hash}`;
}

/** Identifies a key without revealing it: 12 hex digits of SHA-256 cannot be turned back into the key. */
export function fingerprint(secret: string): string {
  return `sha256:${shortHash(secret, 12)}`;
}
