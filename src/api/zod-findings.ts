/**
 * Turns zod's issues into findings a person can act on: which field, what is wrong, what would be right.
 * zod's own messages ("Invalid input: expected string, received undefined") name neither the field nor the fix.
 */
import type { z } from 'zod';
import type { Finding, PathSegment } from './rules.js';
import { fieldsAt } from './schema-walk.js';
import { closest } from './suggest.js';

type Issue = z.core.$ZodIssue;

function valueAt(input: unknown, path: readonly PathSegment[]): unknown {
  let current = input;
  for (const segment of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string | number, unknown>)[segment];
  }
  return current;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

const ARTICLE: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'a map',
  array: 'a list',
  record: 'a map',
};

function unit(origin: string, n: number | bigint): string {
  if (origin === 'array') return `${n} item${n === 1 ? '' : 's'}`;
  if (origin === 'string') return `${n} character${n === 1 ? '' : 's'}`;
  if (origin === 'object' || origin === 'record') return `${n} entr${n === 1 ? 'y' : 'ies'}`;
  return String(n);
}

function messageFor(issue: Issue, input: unknown): string {
  const value = valueAt(input, issue.path as PathSegment[]);
  switch (issue.code) {
    case 'invalid_type':
      if (value === undefined) return 'is required but missing';
      return `must be ${ARTICLE[issue.expected] ?? issue.expected}, not ${describeType(value)}`;
    case 'invalid_value': {
      const allowed = issue.values.map((v) => JSON.stringify(v));
      const hint = typeof value === 'string' ? closest(value, issue.values.map(String)) : undefined;
      return `${JSON.stringify(value)} is not allowed; use ${allowed.length === 1 ? allowed[0] : `one of ${allowed.join(', ')}`}${hint ? ` (did you mean "${hint}"?)` : ''}`;
    }
    case 'too_small':
      if (issue.origin === 'string' && Number(issue.minimum) === 1) return 'must not be empty';
      if (issue.origin === 'array' || issue.origin === 'string') return `needs at least ${unit(issue.origin, issue.minimum)}`;
      return `must be ${issue.inclusive ? 'at least' : 'greater than'} ${issue.minimum}, not ${String(value)}`;
    case 'too_big':
      if (issue.origin === 'array' || issue.origin === 'string') return `may have at most ${unit(issue.origin, issue.maximum)}`;
      return `must be ${issue.inclusive ? 'at most' : 'less than'} ${issue.maximum}, not ${String(value)}`;
    case 'invalid_format':
      return `${JSON.stringify(value)}: ${issue.message.startsWith('Invalid') ? `does not match ${issue.pattern ?? issue.format}` : issue.message}`;
    case 'not_multiple_of':
      return `must be a multiple of ${issue.divisor}`;
    case 'invalid_key':
      return `key ${JSON.stringify(String(issue.path.at(-1) ?? ''))}: ${issue.issues.map((i) => i.message).join('; ')}`;
    default:
      return issue.message;
  }
}

/** Findings for one failed parse; `root` is the schema parsed, for the names of known fields. */
export function findingsFromZod(error: z.ZodError, input: unknown, root: z.core.$ZodType): Finding[] {
  return error.issues.flatMap((issue): Finding[] => {
    const path = issue.path as PathSegment[];
    if (issue.code === 'unrecognized_keys') {
      const known = fieldsAt(root, path);
      return issue.keys.map((key) => {
        const hint = closest(key, known);
        const advice = hint ? `did you mean "${hint}"?` : `known fields: ${known.join(', ')}`;
        return { path: [...path, key], severity: 'error', message: `unknown field; ${advice}` };
      });
    }
    return [{ path, severity: 'error', message: messageFor(issue, input) }];
  });
}
