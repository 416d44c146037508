import { describe, expect, it } from '@jest/globals';
import { parse, parseDocument, visit } from 'yaml';
import { z } from 'zod';
import { buildCrd, buildOpenAPIV3Schema, crdYaml, CRD_HEADER, structuralFromZod, type JSONSchemaProps } from '../../src/api/crd.js';
import { CATEGORIES, GROUP, SHORT_NAMES } from '../../src/api/group.js';
import { celRules } from '../../src/api/rules.js';
import { LLMRouteSpec, LLMRouteStatus } from '../../src/api/schema.js';
import { structuralViolations, type Violation } from './structural.js';

const crd = buildCrd();
const version = crd.spec.versions[0]!;
const schema = version.schema.openAPIV3Schema;

/** The node at a rules.ts-style location: property names, `[]` for items, `{}` for map values. */
function nodeAt(root: JSONSchemaProps, at: readonly string[]): JSONSchemaProps | undefined {
  let node: JSONSchemaProps | undefined = root;
  for (const segment of at) {
    node = segment === '[]' ? node?.items : segment === '{}' ? node?.additionalProperties : node?.properties?.[segment];
  }
  return node;
}

/** Every node below (and including) `node`, with a readable path. */
function* walk(node: JSONSchemaProps, path: string): Generator<[string, JSONSchemaProps]> {
  yield [path, node];
  for (const [name, prop] of Object.entries(node.properties ?? {})) yield* walk(prop, `${path}.${name}`);
  if (node.items) yield* walk(node.items, `${path}[]`);
  if (node.additionalProperties) yield* walk(node.additionalProperties, `${path}{}`);
}

const where = (at: readonly string[]) => (at.length === 0 ? '<root>' : at.join('.').replaceAll('.[]', '[]').replaceAll('.{}', '{}'));
const messages = (violations: Violation[]) => violations.map((v) => `${v.path}: ${v.message}`);

describe('the structural schema checker', () => {
  it('accepts the generated CRD schema', () => {
    expect(messages(structuralViolations(schema))).toEqual([]);
  });

  it("rejects zod's raw output, which is what the generator has to fix", () => {
    const raw = z.toJSONSchema(LLMRouteSpec, { target: 'openapi-3.0', io: 'input' });
    const found = messages(structuralViolations({ type: 'object', properties: { spec: raw } }));
    expect(found).toContainEqual('$.properties.spec.additionalProperties: must not be used together with properties');
    expect(found).toContainEqual('$.properties.spec.properties.retry.additionalProperties: must not be used together with properties');
  });

  it('finds every defect of a deliberately broken schema, with its path', () => {
    const broken = {
      type: 'object',
      additionalProperties: { type: 'string' },
      properties: {
        kind: { type: 'integer' },
        metadata: { type: 'object', properties: { name: { type: 'string', maxLength: 10 } } },
        untyped: { description: 'no type' },
        both: { type: 'object', properties: { a: { type: 'string' } }, additionalProperties: false },
        ref: { $ref: '#/definitions/X' },
        literal: { type: 'string', const: 'x' },
        unique: { type: 'array', uniqueItems: true, items: { type: 'string' } },
        tuple: { type: 'array', items: [{ type: 'string' }] },
        noItems: { type: 'array' },
        lookahead: { type: 'string', pattern: '^(?!x)' },
        badDefault: { type: 'integer', minimum: 1, default: 0 },
        badEnumDefault: { type: 'string', enum: ['a', 'b'], default: 'c' },
        defaultMissingRequired: { type: 'object', required: ['x'], properties: { x: { type: 'string' } }, default: {} },
        defaultUnknownField: { type: 'object', properties: { x: { type: 'string' } }, default: { y: 'z' } },
        defaultWrongType: { type: 'string', default: 3 },
        junctors: {
          type: 'object',
          properties: { a: { type: 'string' } },
          anyOf: [{ type: 'object', description: 'no', required: ['a'] }, { properties: { b: { minLength: 1 } } }],
        },
        listMap: { type: 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'], items: { type: 'object', properties: { name: { type: 'string' } } } },
        rules: { type: 'object', properties: { a: { type: 'string' } }, 'x-kubernetes-validations': [{ rule: '', message: 'm', reason: 'Bogus', fieldPath: '.b' }] },
      },
      definitions: { X: { type: 'string' } },
    };
    const found = messages(structuralViolations(broken));
    const expected = [
      '$.additionalProperties: must not be used at the root',
      '$.properties.kind: must be of type string',
      '$.properties.metadata: must specify only type: object, not properties (the API server owns metadata)',
      '$.properties.untyped.type: must not be empty for object fields',
      '$.properties.both.additionalProperties: must not be used together with properties',
      '$.properties.ref.$ref: must not be used: references must be inlined',
      '$.properties.literal.const: is not a JSONSchemaProps field (the API server rejects or drops it)',
      '$.properties.unique.uniqueItems: must not be true (quadratic to check)',
      '$.properties.tuple.items: must be a single schema, not a list',
      '$.properties.noItems.items: must be specified for an array',
      '$.properties.lookahead.pattern: uses lookaround, which RE2 does not support',
      '$.properties.badDefault.default: is not valid against its schema: the value 0 is below the minimum 1',
      '$.properties.badEnumDefault.default: is not valid against its schema: the value "c" is not one of ["a","b"]',
      '$.properties.defaultMissingRequired.default: is not valid against its schema: the value lacks the required "x"',
      '$.properties.defaultUnknownField.default: is not valid against its schema: the value has the unknown field "y", which would be pruned',
      '$.properties.defaultWrongType.default: is not valid against its schema: the value is integer, not string',
      '$.properties.junctors.anyOf[0].type: must not be used inside allOf, anyOf, oneOf or not',
      '$.properties.junctors.anyOf[0].description: must not be used inside allOf, anyOf, oneOf or not',
      '$.properties.junctors.anyOf[1].properties.b: is not specified in the structural part of the schema',
      '$.properties.listMap.x-kubernetes-list-map-keys: "name" must be required or have a default',
      '$.properties.rules.x-kubernetes-validations[0].rule: must be a non-empty string',
      '$.properties.rules.x-kubernetes-validations[0].reason: must be one of FieldValueInvalid, FieldValueForbidden, FieldValueRequired, FieldValueDuplicate',
      '$.properties.rules.x-kubernetes-validations[0].fieldPath: ".b" does not name a field of this node',
      '$.definitions: must not be used: references must be inlined',
    ];
    for (const violation of expected) expect(found).toContainEqual(violation);
  });

  it('applies nested defaults before judging a default, as the API server does', () => {
    const withNested = { type: 'object', properties: { o: { type: 'object', required: ['x'], properties: { x: { type: 'integer', default: 1 } }, default: {} } } };
    expect(structuralViolations(withNested)).toEqual([]);
  });
});

describe('zod to structural schema', () => {
  it('drops additionalProperties: false and keeps maps as additionalProperties', () => {
    for (const [path, node] of walk(schema, '')) {
      expect([path, node.additionalProperties]).not.toEqual([path, false]);
      if (node.properties) expect([path, node.additionalProperties]).toEqual([path, undefined]);
    }
    expect(nodeAt(schema, ['spec', 'prices'])).toMatchObject({ type: 'object', maxProperties: 64, additionalProperties: { type: 'object', required: ['input', 'output'] } });
  });

  it('replaces zod\'s safe-integer bounds on a bare z.int() with format: int64, and keeps real bounds', () => {
    const bounds = [...walk(schema, '')].filter(([, n]) => n.type === 'integer').map(([, n]) => [n.minimum, n.maximum]);
    expect(bounds.flat()).not.toContain(Number.MAX_SAFE_INTEGER);
    expect(nodeAt(schema, ['status', 'observedGeneration'])).toEqual({ description: 'The `metadata.generation` this status describes.', type: 'integer', format: 'int64', minimum: 0 });
    expect(nodeAt(schema, ['spec', 'retry', 'maxAttempts'])).toMatchObject({ type: 'integer', minimum: 1, maximum: 10, default: 3 });
    expect(nodeAt(schema, ['spec', 'providers', '[]', 'limits', 'requestsPerMinute'])).toMatchObject({ minimum: 0, exclusiveMinimum: true });
  });

  it('keeps every pattern exactly as zod emits it', () => {
    const patterns = (node: unknown): string[] =>
      typeof node !== 'object' || node === null ? [] : Object.entries(node).flatMap(([k, v]) => (k === 'pattern' && typeof v === 'string' ? [v] : patterns(v)));
    const fromZod = [...patterns(z.toJSONSchema(LLMRouteSpec, { target: 'openapi-3.0', io: 'input' })), ...patterns(z.toJSONSchema(LLMRouteStatus, { target: 'openapi-3.0', io: 'output' }))];
    expect(patterns(schema).sort()).toEqual(fromZod.sort());
  });

  it('turns prefault({}) into default: {} so the API server applies the nested defaults', () => {
    expect(nodeAt(schema, ['spec', 'retry'])?.default).toEqual({});
    expect(nodeAt(schema, ['spec', 'environments', '[]', 'gateway', 'resources', 'limits', 'memory'])?.default).toBe('256Mi');
  });

  it('translates what it can and refuses what a structural schema cannot say', () => {
    expect(structuralFromZod(z.literal('x'), 'input')).toEqual({ type: 'string', enum: ['x'] });
    expect(structuralFromZod(z.strictObject({ a: z.unknown() }), 'input')).toEqual({ type: 'object', required: ['a'], properties: { a: { 'x-kubernetes-preserve-unknown-fields': true } } });
    expect(structuralFromZod(z.looseObject({ a: z.string() }), 'input')).toEqual({ type: 'object', required: ['a'], properties: { a: { type: 'string' } }, 'x-kubernetes-preserve-unknown-fields': true });
    const Shared = z.strictObject({ x: z.string() }).meta({ id: 'Shared' });
    expect(structuralFromZod(z.strictObject({ a: Shared, b: Shared }), 'input').properties).toEqual({
      a: { type: 'object', required: ['x'], properties: { x: { type: 'string' } } },
      b: { type: 'object', required: ['x'], properties: { x: { type: 'string' } } },
    });
    expect(() => structuralFromZod(z.strictObject({ u: z.union([z.string(), z.number()]) }), 'input', ['spec'])).toThrow(/spec\.u: zod emitted anyOf/);
    expect(() => structuralFromZod(z.tuple([z.string(), z.number()]), 'input', ['t'])).toThrow(/t\[\]: zod emitted anyOf/);
    const Tree: z.ZodType = z.lazy(() => z.strictObject({ kids: z.array(Tree) }));
    expect(() => structuralFromZod(z.strictObject({ t: Tree }), 'input')).toThrow(/recursive/);
    expect(() => structuralFromZod(z.strictObject({ a: z.string() }).catchall(z.number()), 'input')).toThrow(/catchall/);
  });
});

describe('CEL rules', () => {
  const rules = celRules();

  it.each(rules.map((r) => [where(r.at), r.rule, r] as const))('%s: %s', (_at, _rule, rule) => {
    const node = nodeAt(schema, rule.at);
    expect(node).toBeDefined();
    expect(node?.['x-kubernetes-validations']).toContainEqual({ rule: rule.rule, message: rule.message, ...(rule.fieldPath ? { fieldPath: rule.fieldPath } : {}), reason: 'FieldValueInvalid' });
  });

  it('are all placed, once each, and nothing else is', () => {
    const placed = [...walk(schema, '')].flatMap(([, n]) => n['x-kubernetes-validations'] ?? []).map((v) => v.rule);
    expect(placed.sort()).toEqual(rules.map((r) => r.rule).sort());
  });

  it('refuse to be dropped silently when their location is gone', () => {
    expect(() => buildOpenAPIV3Schema([{ at: ['spec', 'models', '[]', 'timeout'], rule: 'true', message: 'm' }])).toThrow(
      /the schema has no "timeout" at spec\.models\[\]; a field was renamed or moved/,
    );
    expect(() => buildOpenAPIV3Schema([{ at: ['spec', 'retry', '{}'], rule: 'true', message: 'm' }])).toThrow(/no "\{\}" at spec\.retry/);
  });

  it('only see bounded arrays, maps and strings, so the API server can estimate their cost', () => {
    // The API server rejects a rule whose worst-case cost is too high; an unbounded list, map or string anywhere
    // below a rule's node makes that worst case huge. Enums and date formats are bounded by their values.
    // Not visible here: for root rules the API server adds metadata.name as an unbounded string, which the
    // route-name rule sizes and matches (it stays within budget; see the CRD cost notes in the report).
    // apiVersion and kind are the API server's: it has checked them before any rule runs, and no rule reads them.
    const serverOwned = new Set(['<root>.apiVersion', '<root>.kind']);
    const unbounded = new Set<string>();
    for (const rule of rules) {
      for (const [path, node] of walk(nodeAt(schema, rule.at)!, where(rule.at))) {
        if (serverOwned.has(path)) continue;
        if (node['x-kubernetes-preserve-unknown-fields']) unbounded.add(`${path}: unknown fields`);
        if (node.type === 'array' && node.maxItems === undefined) unbounded.add(`${path}: no maxItems`);
        if (node.type === 'object' && node.additionalProperties && node.maxProperties === undefined) unbounded.add(`${path}: no maxProperties`);
        if (node.type === 'string' && node.maxLength === undefined && !node.enum && !['date', 'date-time', 'duration'].includes(node.format ?? '')) {
          unbounded.add(`${path}: no maxLength`);
        }
      }
    }
    expect([...unbounded]).toEqual([]);
  });
});

describe('the CRD', () => {
  it('is named and scoped as group.ts says', () => {
    expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
    expect(crd.kind).toBe('CustomResourceDefinition');
    expect(crd.metadata.name).toBe('llmroutes.llmroute.dev');
    expect(crd.metadata.name).toBe(`${crd.spec.names.plural}.${crd.spec.group}`); // the API server insists
    expect(crd.spec.group).toBe(GROUP);
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names).toEqual({ kind: 'LLMRoute', listKind: 'LLMRouteList', plural: 'llmroutes', singular: 'llmroute', shortNames: ['llmr'], categories: CATEGORIES });
    expect(crd.spec.names.shortNames).toEqual(SHORT_NAMES);
    // A category equal to a resource name would shadow it in kubectl.
    for (const category of crd.spec.names.categories) expect(['llmroutes', 'llmroute', ...SHORT_NAMES]).not.toContain(category);
  });

  it('has one served storage version with the status subresource', () => {
    expect(crd.spec.versions).toHaveLength(1);
    expect(version).toMatchObject({ name: 'v1alpha1', served: true, storage: true, subresources: { status: {} } });
  });

  it('prints environments, readiness, reason, pins and age', () => {
    expect(version.additionalPrinterColumns.map(({ name, type, jsonPath, priority }) => ({ name, type, jsonPath, priority }))).toEqual([
      { name: 'Environments', type: 'string', jsonPath: '.spec.environments[*].name', priority: undefined },
      { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status', priority: undefined },
      { name: 'Reason', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].reason', priority: 1 },
      { name: 'Pins', type: 'string', jsonPath: '.spec.models[*].pin', priority: undefined },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', priority: undefined },
    ]);
    // Every column's path exists in the schema (metadata is the API server's).
    for (const { jsonPath } of version.additionalPrinterColumns) {
      const at = jsonPath
        .replace(/\[\?\(.*?\)\]|\[\*\]/g, '.[]')
        .split('.')
        .filter(Boolean);
      if (at[0] !== 'metadata') expect([jsonPath, nodeAt(schema, at)]).toEqual([jsonPath, expect.anything()]);
    }
  });

  it('wraps the spec and status schemas; metadata is only type: object', () => {
    expect(schema.type).toBe('object');
    expect(schema.required).toEqual(['spec']);
    expect(Object.keys(schema.properties ?? {})).toEqual(['apiVersion', 'kind', 'metadata', 'spec', 'status']);
    expect(schema.properties?.metadata).toEqual({ type: 'object' });
    expect(schema.properties?.spec?.required).toEqual(['providers', 'models', 'environments']);
  });

  it.each([
    [['spec', 'providers'], ['name']],
    [['spec', 'models'], ['name']],
    [['spec', 'clients'], ['name']],
    [['spec', 'flags'], ['name']],
    [['spec', 'environments'], ['name']],
    [['status', 'environments'], ['name']],
    [['status', 'conditions'], ['type']],
  ])('merges %j by %j', (at, keys) => {
    const list = nodeAt(schema, at);
    expect(list?.['x-kubernetes-list-type']).toBe('map');
    expect(list?.['x-kubernetes-list-map-keys']).toEqual(keys);
    for (const key of keys) expect(list?.items?.required).toContain(key);
  });

  it('renders as deterministic YAML with the header, no anchors and no folded lines', () => {
    const text = crdYaml();
    expect(text.split('\n')[0]).toBe(CRD_HEADER);
    expect(CRD_HEADER).toBe('# Generated by `npm run generate` from src/api/schema.ts and src/api/rules.ts. Do not edit.');
    expect(crdYaml()).toBe(text);
    expect(parse(text)).toEqual(JSON.parse(JSON.stringify(crd)));
    let aliases = 0;
    visit(parseDocument(text), { Alias: () => void aliases++ });
    expect(aliases).toBe(0);
    // Long CEL rules stay on one line each, so a diff shows the rule that changed.
    const oneLineRules = text
      .split('\n')
      .map((line) => /^\s*- rule: (.*)$/.exec(line)?.[1])
      .filter((scalar): scalar is string => scalar !== undefined)
      .map((scalar) => parse(scalar) as unknown);
    expect(oneLineRules.sort()).toEqual(celRules().map((r) => r.rule).sort());
  });
});
