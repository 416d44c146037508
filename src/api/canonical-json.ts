import { shortHash } from './names.js';

/** JSON with object keys sorted at every level: equal values always serialise to equal text. */
export function canonicalJson(value: unknown, indent = 0): string {
  return JSON.stringify(value, (_key, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v), indent);
}

/** The hash that identifies a compiled config: changes when, and only when, the config does. */
export function configHash(config: unknown): string {
  return shortHash(canonicalJson(config), 16);
}
