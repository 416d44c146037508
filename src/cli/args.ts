/** Checks of command-line values shared by the commands: each error names the flag and what it takes. */
import { LEVELS, type Level } from '../log.js';

export function integerArg(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} takes a whole number from ${min} to ${max}, not "${value}"`);
  return n;
}

/** A TCP port; 0 asks the system for a free one. */
export const portArg = (name: string, value: string) => integerArg(name, value, 0, 65535);

export function levelArg(value: string): Level {
  if (!LEVELS.includes(value as Level)) throw new Error(`--log-level takes one of ${LEVELS.join(', ')}, not "${value}"`);
  return value as Level;
}
