import type { z } from 'zod';
import type { PathSegment } from './rules.js';

type AnySchema = z.core.$ZodType;

const WRAPPERS = new Set(['optional', 'default', 'prefault', 'nullable', 'readonly', 'catch', 'nonoptional']);

/** Strips optional/default/... wrappers down to the schema that gives the value its shape. */
export function unwrap(schema: AnySchema): AnySchema {
  let current = schema;
  while (WRAPPERS.has(current._zod.def.type)) current = (current._zod.def as unknown as { innerType: AnySchema }).innerType;
  return current;
}

/** The schema of the value at `path`, or undefined when the path leaves the schema. */
export function schemaAt(root: AnySchema, path: readonly PathSegment[]): AnySchema | undefined {
  let current: AnySchema | undefined = root;
  for (const segment of path) {
    if (!current) return undefined;
    const def = unwrap(current)._zod.def as unknown as {
      type: string;
      shape?: Record<string, AnySchema>;
      element?: AnySchema;
      valueType?: AnySchema;
    };
    if (def.type === 'object') current = def.shape?.[String(segment)];
    else if (def.type === 'array') current = def.element;
    else if (def.type === 'record') current = def.valueType;
    else return undefined;
  }
  return current;
}

/** The field names an object schema at `path` accepts. */
export function fieldsAt(root: AnySchema, path: readonly PathSegment[]): string[] {
  const schema = schemaAt(root, path);
  if (!schema) return [];
  const def = unwrap(schema)._zod.def as unknown as { type: string; shape?: Record<string, AnySchema> };
  return def.type === 'object' && def.shape ? Object.keys(def.shape) : [];
}
