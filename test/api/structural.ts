/**
 * An independent checker of the rules the Kubernetes API server applies to a CRD's openAPIV3Schema: the structural
 * schema rules (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema)
 * plus the checks of apiextensions validation that a generator can get wrong (list-map keys, defaults, patterns,
 * validation rules). It does not share code with src/api/crd.ts on purpose: it must be able to disagree.
 *
 * It works on plain JSON, so it can be fed anything, including zod's raw output and deliberately broken schemas.
 */

export interface Violation {
  /** JSON path of the offending node or keyword, from `$` (the openAPIV3Schema). */
  path: string;
  message: string;
}

type Node = Record<string, unknown>;
type Level = 'root' | 'field' | 'item';

/** Every field of apiextensions.k8s.io/v1 JSONSchemaProps; anything else is dropped or rejected by the API server. */
const KNOWN_KEYWORDS = new Set([
  'id',
  '$schema',
  '$ref',
  'description',
  'type',
  'format',
  'title',
  'default',
  'maximum',
  'exclusiveMaximum',
  'minimum',
  'exclusiveMinimum',
  'maxLength',
  'minLength',
  'pattern',
  'maxItems',
  'minItems',
  'uniqueItems',
  'multipleOf',
  'enum',
  'maxProperties',
  'minProperties',
  'required',
  'items',
  'allOf',
  'oneOf',
  'anyOf',
  'not',
  'properties',
  'additionalProperties',
  'patternProperties',
  'dependencies',
  'additionalItems',
  'definitions',
  'externalDocs',
  'example',
  'nullable',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-embedded-resource',
  'x-kubernetes-int-or-string',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-list-type',
  'x-kubernetes-map-type',
  'x-kubernetes-validations',
]);

/** JSONSchemaProps fields that a CRD may not use at all. */
const FORBIDDEN_KEYWORDS: Record<string, string> = {
  $ref: 'must not be used: references must be inlined',
  definitions: 'must not be used: references must be inlined',
  dependencies: 'is not supported',
  additionalItems: 'is not supported',
  patternProperties: 'is not supported',
  id: 'is not supported',
  $schema: 'is not supported',
};

/** Inside allOf/anyOf/oneOf/not only value validations are allowed, no structure. */
const FORBIDDEN_IN_JUNCTORS = ['type', 'default', 'description', 'title', 'nullable', 'additionalProperties'];
const TYPES = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean']);
const SCALARS = new Set(['string', 'integer', 'number', 'boolean']);
const VALIDATION_RULE_KEYS = new Set(['rule', 'message', 'messageExpression', 'reason', 'fieldPath', 'optionalOldSelf']);
const VALIDATION_REASONS = new Set(['FieldValueInvalid', 'FieldValueForbidden', 'FieldValueRequired', 'FieldValueDuplicate']);

const isNode = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);
const child = (path: string, key: string) => (/^[A-Za-z_$][\w$-]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`);

/** Checks an openAPIV3Schema; returns every violation found (empty when the API server would accept it). */
export function structuralViolations(schema: unknown): Violation[] {
  const out: Violation[] = [];
  if (!isNode(schema)) return [{ path: '$', message: 'the schema must be an object' }];
  checkNode(schema, '$', 'root', out);
  return out;
}

function checkNode(node: Node, path: string, level: Level, out: Violation[]): void {
  const report = (p: string, message: string) => out.push({ path: p, message });
  checkKeywords(node, path, out);

  const preserve = node['x-kubernetes-preserve-unknown-fields'] === true;
  const intOrString = node['x-kubernetes-int-or-string'] === true;
  if (node.type === undefined || node.type === '') {
    if (!preserve && !intOrString) report(child(path, 'type'), `must not be empty for ${level === 'root' ? 'the root' : level === 'item' ? 'array items' : 'object fields'}`);
  } else if (typeof node.type !== 'string' || !TYPES.has(node.type)) {
    report(child(path, 'type'), `must be one of ${[...TYPES].join(', ')}, not ${JSON.stringify(node.type)}`);
  }

  if (level === 'root') {
    if (node.type !== 'object') report(child(path, 'type'), 'must be object at the root');
    if (node.additionalProperties !== undefined) report(child(path, 'additionalProperties'), 'must not be used at the root');
    const props = isNode(node.properties) ? node.properties : {};
    for (const key of ['apiVersion', 'kind']) {
      const p = props[key];
      if (isNode(p) && p.type !== 'string') report(child(child(path, 'properties'), key), 'must be of type string');
    }
    const metadata = props.metadata;
    if (metadata !== undefined) {
      const metadataPath = child(child(path, 'properties'), 'metadata');
      if (!isNode(metadata) || metadata.type !== 'object') report(metadataPath, 'must be of type object');
      else {
        const extra = Object.keys(metadata).filter((k) => k !== 'type');
        if (extra.length > 0) report(metadataPath, `must specify only type: object, not ${extra.join(', ')} (the API server owns metadata)`);
      }
    }
  }

  if (node.properties !== undefined && node.additionalProperties !== undefined) {
    report(child(path, 'additionalProperties'), 'must not be used together with properties');
  }
  if (node.type === 'array' && node.items === undefined) report(child(path, 'items'), 'must be specified for an array');
  if (node.items !== undefined && !isNode(node.items)) report(child(path, 'items'), 'must be a single schema, not a list');
  if (node.uniqueItems === true) report(child(path, 'uniqueItems'), 'must not be true (quadratic to check)');

  checkPattern(node, path, out);
  checkListType(node, path, out);
  checkValidationRules(node, path, out);
  if (Array.isArray(node.enum) && typeof node.type === 'string') {
    node.enum.forEach((value, i) => {
      for (const problem of valueProblems({ ...node, enum: undefined, default: undefined }, value, '')) report(`${child(path, 'enum')}[${i}]`, `enum value ${problem}`);
    });
  }
  if (node.default !== undefined) {
    const defaulted = applyDefaults(node, structuredClone(node.default));
    for (const problem of valueProblems(node, defaulted, '')) report(child(path, 'default'), `is not valid against its schema: ${problem}`);
  }

  for (const junctor of ['allOf', 'anyOf', 'oneOf'] as const) {
    const list = node[junctor];
    if (list === undefined) continue;
    if (!Array.isArray(list)) {
      report(child(path, junctor), 'must be a list of schemas');
      continue;
    }
    list.forEach((j, i) => (isNode(j) ? checkJunctor(j, node, `${child(path, junctor)}[${i}]`, out) : report(`${child(path, junctor)}[${i}]`, 'must be a schema')));
  }
  if (node.not !== undefined) {
    if (isNode(node.not)) checkJunctor(node.not, node, child(path, 'not'), out);
    else report(child(path, 'not'), 'must be a schema');
  }

  if (isNode(node.properties)) {
    for (const [name, prop] of Object.entries(node.properties)) {
      const p = child(child(path, 'properties'), name);
      if (isNode(prop)) checkNode(prop, p, 'field', out);
      else report(p, 'must be a schema');
    }
  }
  if (isNode(node.additionalProperties)) checkNode(node.additionalProperties, child(path, 'additionalProperties'), 'field', out);
  if (isNode(node.items)) checkNode(node.items, child(path, 'items'), 'item', out);
}

/** Keywords that are unknown to JSONSchemaProps or forbidden in a CRD. */
function checkKeywords(node: Node, path: string, out: Violation[]): void {
  for (const key of Object.keys(node)) {
    if (!KNOWN_KEYWORDS.has(key)) out.push({ path: child(path, key), message: `is not a JSONSchemaProps field (the API server rejects or drops it)` });
    else if (FORBIDDEN_KEYWORDS[key]) out.push({ path: child(path, key), message: FORBIDDEN_KEYWORDS[key] });
  }
}

/**
 * A value validation inside allOf/anyOf/oneOf/not: no structural keywords, and every property or items it mentions
 * must also be specified in the structural part (`outer`) at the same place.
 */
function checkJunctor(node: Node, outer: Node | undefined, path: string, out: Violation[]): void {
  checkKeywords(node, path, out);
  for (const key of FORBIDDEN_IN_JUNCTORS) {
    if (node[key] !== undefined) out.push({ path: child(path, key), message: 'must not be used inside allOf, anyOf, oneOf or not' });
  }
  for (const key of Object.keys(node)) {
    if (key.startsWith('x-kubernetes-')) out.push({ path: child(path, key), message: 'must not be used inside allOf, anyOf, oneOf or not' });
  }
  if (isNode(node.properties)) {
    if ('metadata' in node.properties) out.push({ path: child(child(path, 'properties'), 'metadata'), message: 'must not be specified inside allOf, anyOf, oneOf or not' });
    const outerProps = outer && isNode(outer.properties) ? outer.properties : undefined;
    const outerAdditional = outer && isNode(outer.additionalProperties) ? outer.additionalProperties : undefined;
    for (const [name, prop] of Object.entries(node.properties)) {
      const p = child(child(path, 'properties'), name);
      const counterpart = outerProps?.[name] ?? outerAdditional;
      if (!isNode(counterpart)) out.push({ path: p, message: 'is not specified in the structural part of the schema' });
      if (isNode(prop)) checkJunctor(prop, isNode(counterpart) ? counterpart : undefined, p, out);
    }
  }
  if (isNode(node.items)) {
    const counterpart = outer && isNode(outer.items) ? outer.items : undefined;
    if (!counterpart) out.push({ path: child(path, 'items'), message: 'is not specified in the structural part of the schema' });
    checkJunctor(node.items, counterpart, child(path, 'items'), out);
  }
  for (const junctor of ['allOf', 'anyOf', 'oneOf'] as const) {
    const list = node[junctor];
    if (Array.isArray(list)) list.forEach((j, i) => isNode(j) && checkJunctor(j, outer, `${child(path, junctor)}[${i}]`, out));
  }
  if (isNode(node.not)) checkJunctor(node.not, outer, child(path, 'not'), out);
}

/** The API server matches patterns with Go's RE2: no lookaround, no backreferences. */
function checkPattern(node: Node, path: string, out: Violation[]): void {
  if (node.pattern === undefined) return;
  const p = child(path, 'pattern');
  if (typeof node.pattern !== 'string') {
    out.push({ path: p, message: 'must be a string' });
    return;
  }
  try {
    new RegExp(node.pattern, 'u');
  } catch (error) {
    out.push({ path: p, message: `is not a valid regular expression: ${(error as Error).message}` });
  }
  if (/\(\?<?[=!]/.test(node.pattern)) out.push({ path: p, message: 'uses lookaround, which RE2 does not support' });
  if (/\\[1-9]|\\k</.test(node.pattern)) out.push({ path: p, message: 'uses a backreference, which RE2 does not support' });
}

function checkListType(node: Node, path: string, out: Violation[]): void {
  const listType = node['x-kubernetes-list-type'];
  const keys = node['x-kubernetes-list-map-keys'];
  if (listType === undefined) {
    if (keys !== undefined) out.push({ path: child(path, 'x-kubernetes-list-map-keys'), message: 'needs x-kubernetes-list-type: map' });
    return;
  }
  const p = child(path, 'x-kubernetes-list-type');
  if (node.type !== 'array') out.push({ path: p, message: 'may only be set on arrays' });
  if (listType !== 'atomic' && listType !== 'set' && listType !== 'map') {
    out.push({ path: p, message: `must be atomic, set or map, not ${JSON.stringify(listType)}` });
    return;
  }
  const items = isNode(node.items) ? node.items : undefined;
  if (listType === 'set' && items && !SCALARS.has(String(items.type))) out.push({ path: p, message: 'set needs scalar items' });
  if (listType !== 'map') {
    if (keys !== undefined) out.push({ path: child(path, 'x-kubernetes-list-map-keys'), message: 'needs x-kubernetes-list-type: map' });
    return;
  }
  const keysPath = child(path, 'x-kubernetes-list-map-keys');
  if (!items || items.type !== 'object') out.push({ path: p, message: 'map needs object items' });
  if (!Array.isArray(keys) || keys.length === 0) {
    out.push({ path: keysPath, message: 'must name at least one key when x-kubernetes-list-type is map' });
    return;
  }
  if (new Set(keys).size !== keys.length) out.push({ path: keysPath, message: 'must not contain duplicates' });
  const props = items && isNode(items.properties) ? items.properties : {};
  const required = items && Array.isArray(items.required) ? items.required : [];
  for (const key of keys) {
    const prop = props[String(key)];
    if (!isNode(prop)) {
      out.push({ path: keysPath, message: `${JSON.stringify(key)} is not a property of the items` });
      continue;
    }
    if (!SCALARS.has(String(prop.type))) out.push({ path: keysPath, message: `${JSON.stringify(key)} must be a scalar` });
    if (!required.includes(key) && prop.default === undefined) out.push({ path: keysPath, message: `${JSON.stringify(key)} must be required or have a default` });
    if (prop.nullable === true) out.push({ path: keysPath, message: `${JSON.stringify(key)} must not be nullable` });
  }
}

function checkValidationRules(node: Node, path: string, out: Violation[]): void {
  const rules = node['x-kubernetes-validations'];
  if (rules === undefined) return;
  const p = child(path, 'x-kubernetes-validations');
  if (!Array.isArray(rules)) {
    out.push({ path: p, message: 'must be a list' });
    return;
  }
  rules.forEach((rule, i) => {
    const rp = `${p}[${i}]`;
    if (!isNode(rule)) {
      out.push({ path: rp, message: 'must be an object' });
      return;
    }
    for (const key of Object.keys(rule)) if (!VALIDATION_RULE_KEYS.has(key)) out.push({ path: child(rp, key), message: 'is not a ValidationRule field' });
    if (typeof rule.rule !== 'string' || rule.rule.trim() === '') out.push({ path: child(rp, 'rule'), message: 'must be a non-empty string' });
    if (rule.message !== undefined && (typeof rule.message !== 'string' || rule.message.trim() === '' || /[\n\r]/.test(rule.message))) {
      out.push({ path: child(rp, 'message'), message: 'must be a non-empty single line' });
    }
    if (rule.reason !== undefined && !VALIDATION_REASONS.has(String(rule.reason))) out.push({ path: child(rp, 'reason'), message: `must be one of ${[...VALIDATION_REASONS].join(', ')}` });
    if (rule.fieldPath !== undefined && !fieldPathExists(node, rule.fieldPath)) out.push({ path: child(rp, 'fieldPath'), message: `${JSON.stringify(rule.fieldPath)} does not name a field of this node` });
  });
}

/** A simple `.a.b` field path (the only form used here) resolved through properties. */
function fieldPathExists(node: Node, fieldPath: unknown): boolean {
  if (typeof fieldPath !== 'string' || !/^(\.[A-Za-z_][\w-]*)+$/.test(fieldPath)) return false;
  let current: unknown = node;
  for (const name of fieldPath.slice(1).split('.')) {
    if (!isNode(current) || !isNode(current.properties) || !isNode(current.properties[name])) return false;
    current = current.properties[name];
  }
  return true;
}

/** What the API server does to a default before validating it: nested defaults are applied. */
function applyDefaults(node: Node, value: unknown): unknown {
  if (isNode(value) && isNode(node.properties)) {
    for (const [name, prop] of Object.entries(node.properties)) {
      if (!isNode(prop)) continue;
      if (value[name] === undefined && prop.default !== undefined) value[name] = structuredClone(prop.default);
      if (value[name] !== undefined) value[name] = applyDefaults(prop, value[name]);
    }
  } else if (isNode(value) && isNode(node.additionalProperties)) {
    for (const key of Object.keys(value)) value[key] = applyDefaults(node.additionalProperties, value[key]);
  } else if (Array.isArray(value) && isNode(node.items)) {
    return value.map((v) => applyDefaults(node.items as Node, v));
  }
  return value;
}

const typeOf = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v;

/** Why `value` is not valid against `node` (type, enum, bounds, pattern, required, pruning, recursively). */
export function valueProblems(node: Node, value: unknown, at: string): string[] {
  const problems: string[] = [];
  const here = at === '' ? 'the value' : at;
  if (value === null) {
    if (node.nullable !== true) problems.push(`${here} is null but the schema is not nullable`);
    return problems;
  }
  const actual = typeOf(value);
  if (typeof node.type === 'string' && actual !== node.type && !(node.type === 'number' && actual === 'integer')) {
    problems.push(`${here} is ${actual}, not ${node.type}`);
    return problems;
  }
  if (Array.isArray(node.enum) && !node.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    problems.push(`${here} ${JSON.stringify(value)} is not one of ${JSON.stringify(node.enum)}`);
  }
  if (typeof value === 'number') {
    if (typeof node.minimum === 'number' && (node.exclusiveMinimum === true ? value <= node.minimum : value < node.minimum)) problems.push(`${here} ${value} is below the minimum ${node.minimum}`);
    if (typeof node.maximum === 'number' && (node.exclusiveMaximum === true ? value >= node.maximum : value > node.maximum)) problems.push(`${here} ${value} is above the maximum ${node.maximum}`);
  }
  if (typeof value === 'string') {
    const length = [...value].length;
    if (typeof node.minLength === 'number' && length < node.minLength) problems.push(`${here} is shorter than ${node.minLength}`);
    if (typeof node.maxLength === 'number' && length > node.maxLength) problems.push(`${here} is longer than ${node.maxLength}`);
    if (typeof node.pattern === 'string' && !new RegExp(node.pattern, 'u').test(value)) problems.push(`${here} ${JSON.stringify(value)} does not match ${node.pattern}`);
  }
  if (Array.isArray(value)) {
    if (typeof node.minItems === 'number' && value.length < node.minItems) problems.push(`${here} has fewer than ${node.minItems} items`);
    if (typeof node.maxItems === 'number' && value.length > node.maxItems) problems.push(`${here} has more than ${node.maxItems} items`);
    if (isNode(node.items)) value.forEach((v, i) => problems.push(...valueProblems(node.items as Node, v, `${at}[${i}]`)));
  }
  if (isNode(value)) {
    const keys = Object.keys(value);
    if (typeof node.maxProperties === 'number' && keys.length > node.maxProperties) problems.push(`${here} has more than ${node.maxProperties} properties`);
    if (typeof node.minProperties === 'number' && keys.length < node.minProperties) problems.push(`${here} has fewer than ${node.minProperties} properties`);
    for (const name of Array.isArray(node.required) ? node.required : []) {
      if (value[String(name)] === undefined) problems.push(`${here} lacks the required ${JSON.stringify(name)}`);
    }
    const props = isNode(node.properties) ? node.properties : undefined;
    for (const key of keys) {
      const sub = props?.[key] ?? (isNode(node.additionalProperties) ? node.additionalProperties : undefined);
      if (isNode(sub)) problems.push(...valueProblems(sub, value[key], `${at}.${key}`));
      else if (node['x-kubernetes-preserve-unknown-fields'] !== true) problems.push(`${here} has the unknown field ${JSON.stringify(key)}, which would be pruned`);
    }
  }
  return problems;
}
