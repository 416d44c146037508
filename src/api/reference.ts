/**
 * docs/api.md, generated from the zod schema (through its JSON Schema) and the cross-field rules, so the reference
 * cannot drift from what the validator and the CRD accept. `npm run generate` writes it; test/generated.test.ts
 * fails when the committed copy differs.
 *
 * Pure and deterministic: no file I/O, no clock, no locale.
 */
import { z } from 'zod';
import { API_VERSION, CATEGORIES, GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION } from './group.js';
import {
  DATED_SNAPSHOT,
  DNS1035_LABEL,
  DNS1123_LABEL,
  DNS1123_SUBDOMAIN,
  DURATION,
  HTTP_URL,
  MODEL_NAME,
  QUANTITY,
  SECRET_KEY,
} from './patterns.js';
import { RULES } from './rules.js';
import * as schemas from './schema.js';
import { LLMRoute, LLMRouteSpec, LLMRouteStatus, SELF_HOSTED_PROVIDER_TYPES } from './schema.js';

/** The subset of JSON Schema (OpenAPI 3.0 dialect) that zod emits for this API. */
export interface JsonNode {
  type?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  properties?: Record<string, JsonNode>;
  required?: string[];
  additionalProperties?: JsonNode | boolean;
  items?: JsonNode;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
}

const JSON_SCHEMA_OPTIONS = { target: 'openapi-3.0', io: 'input' } as const;

/** The JSON Schema the reference is generated from: what users write, before defaults are applied. */
export function jsonSchemaOf(schema: z.ZodType): JsonNode {
  return z.toJSONSchema(schema, JSON_SCHEMA_OPTIONS) as JsonNode;
}

/** Rules whose findings are warnings: legal, but probably not what was meant. `pin-dated` is handled apart. */
export const WARNING_RULES: readonly string[] = ['auth-none-with-clients', 'auth-tokens-without-clients', 'flag-inert'];

/** Condition types the controller sets, each in one line. The schema's `status.conditions` description names them. */
export const CONDITIONS: readonly { type: string; meaning: string }[] = [
  { type: 'Ready', meaning: 'True when the spec is valid, every key is present and every environment\'s objects are applied with nothing degraded; the summary the other conditions explain. Pods serving is `Available`.' },
  { type: 'ConfigValid', meaning: 'False when the spec fails validation (schema or cross-field rules); the message names the field and the rule.' },
  { type: 'KeysResolved', meaning: 'False when a key source cannot be read, e.g. a missing Secret or key, or an ExternalSecret that has not synced.' },
  { type: 'Progressing', meaning: 'True while a change rolls out: a new gateway config being deployed, or a flag rollout stepping.' },
  { type: 'Available', meaning: 'True when every environment has all its gateway pods available (reason `GatewayUnavailable` lists the environments that do not).' },
  { type: 'Degraded', meaning: 'True when applying or pruning failed (`ApplyFailed`) or a flag rollout was aborted (`RolloutAborted`, with the measured numbers).' },
  { type: 'BudgetExceeded', meaning: 'True when an environment\'s daily or monthly budget with `onExhausted: reject` is spent (measured from Prometheus); Unknown without a Prometheus URL.' },
];

/** A minimal route: one hosted provider, one pinned model, one client, one environment. Tested to validate cleanly. */
const EXAMPLE = `apiVersion: ${API_VERSION}
kind: ${KIND}
metadata:
  name: chat-app
  namespace: ai
spec:
  providers:
    - name: openai
      type: openai
  models:
    - name: chat                  # what clients send as "model"
      pin: gpt-4o-2024-08-06      # what the provider is asked for
      fallback:
        - provider: openai
  clients:
    - name: web
      tokenSecretRef: { name: chat-app-clients, key: web }
  environments:
    - name: prod
      keys:
        openai:
          - secretRef: { name: openai-api-key, key: apiKey }
`;

// ---------------------------------------------------------------------------------------------------------------
// Shapes

const isStruct = (node: JsonNode) => node.type === 'object' && node.properties !== undefined;
const mapValue = (node: JsonNode): JsonNode | undefined =>
  node.type === 'object' && !node.properties && typeof node.additionalProperties === 'object' ? node.additionalProperties : undefined;

/** What a map key stands for in a field path; `spec.prices.<model>.input` reads better than `spec.prices.<key>.input`. */
const MAP_KEY_NAMES: Record<string, string> = { prices: 'model', models: 'model', keys: 'provider' };

/** The path segment of a map entry under the field `name`. */
const mapKeySegment = (name: string) => `<${MAP_KEY_NAMES[name] ?? 'key'}>`;

/** A JSON node with the parts that differ between uses of one type removed, in a stable key order. */
function signature(node: JsonNode): string {
  const { description: _description, default: _default, ...shape } = node;
  const sorted = (value: unknown): unknown =>
    Array.isArray(value)
      ? value.map(sorted)
      : value !== null && typeof value === 'object'
        ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => [k, sorted(v)]))
        : value;
  return JSON.stringify(sorted(shape));
}

/** Names of the object types schema.ts exports, by shape, so tables can say `Budget` rather than `object`. */
function namedTypes(): Map<string, string> {
  const names = new Map<string, string>();
  for (const [name, value] of Object.entries(schemas).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!(value instanceof z.ZodObject)) continue;
    const key = signature(jsonSchemaOf(value));
    if (!names.has(key)) names.set(key, name);
  }
  return names;
}

// ---------------------------------------------------------------------------------------------------------------
// Walking the schema into sections

interface Row {
  path: string;
  node: JsonNode;
  required: boolean;
}

interface Section {
  path: string;
  node: JsonNode;
  typeName?: string;
  rows: Row[];
}

function collectSections(node: JsonNode, path: string, names: Map<string, string>, sections: Section[], descend: (path: string) => boolean) {
  if (isStruct(node)) {
    const typeName = names.get(signature(node));
    const section: Section = { path, node, rows: [], ...(typeName ? { typeName } : {}) };
    sections.push(section);
    for (const [name, child] of Object.entries(node.properties ?? {})) {
      const childPath = path ? `${path}.${name}` : name;
      section.rows.push({ path: childPath, node: child, required: node.required?.includes(name) ?? false });
      if (descend(childPath)) collectChild(child, childPath, name, names, sections, descend);
    }
  }
}

function collectChild(node: JsonNode, path: string, name: string, names: Map<string, string>, sections: Section[], descend: (path: string) => boolean) {
  const value = mapValue(node);
  if (isStruct(node)) collectSections(node, path, names, sections, descend);
  else if (node.type === 'array' && node.items) collectChild(node.items, `${path}[]`, name, names, sections, descend);
  else if (value) collectChild(value, `${path}.${mapKeySegment(name)}`, name, names, sections, descend);
}

// ---------------------------------------------------------------------------------------------------------------
// Markdown

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchor(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

const sectionHeading = (path: string) => `\`${path}\``;
const sectionLink = (path: string, text = path) => `[\`${text}\`](#${anchor(sectionHeading(path))})`;

/** One table cell: one line, pipes escaped (GitHub tables need that even inside code spans). */
const cell = (text: string) => text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|').trim();

const code = (value: unknown) => `\`${typeof value === 'string' ? value : JSON.stringify(value)}\``;

function formatNumber(n: number): string {
  if (!Number.isInteger(n) || Math.abs(n) < 10_000) return String(n);
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

const listOf = (values: readonly unknown[], conjunction = 'or') =>
  values.length <= 1 ? values.map(code).join('') : `${values.slice(0, -1).map(code).join(', ')} ${conjunction} ${code(values.at(-1))}`;

const sentence = (text: string) => (text === '' || /[.!?]\**$/.test(text) ? text : `${text}.`);

/**
 * Shared formats: named once under Conventions, and by name in the tables. `long` explains the format; formats
 * without one are self-explanatory. Anything not listed here is shown as its regular expression.
 */
const FORMATS: readonly { pattern: string; short: string; long?: string }[] = [
  { pattern: DNS1123_LABEL, short: 'A DNS-1123 label', long: 'lowercase letters, digits and `-`, starting and ending with a letter or digit' },
  { pattern: DNS1035_LABEL, short: 'A DNS-1035 label', long: 'a DNS-1123 label that starts with a letter' },
  { pattern: DNS1123_SUBDOMAIN, short: 'A DNS-1123 subdomain', long: 'DNS-1123 labels joined by `.`' },
  { pattern: MODEL_NAME, short: 'A model name', long: 'letters, digits and `-` `.` `_` `:` `/` `@`, starting and ending with a letter or digit, e.g. `gpt-4.1`, `llama3:8b`, `meta-llama/Llama-3.3-70B-Instruct`' },
  { pattern: DURATION, short: 'A duration', long: 'numbers with units `ms`, `s`, `m` or `h`, e.g. `90s`, `15m`, `1h30m`' },
  { pattern: QUANTITY, short: 'A Kubernetes quantity', long: 'a number with an optional suffix, e.g. `100m`, `0.5`, `128Mi`, `1Gi`' },
  { pattern: SECRET_KEY, short: 'Letters, digits, `-`, `_` and `.`' },
  { pattern: HTTP_URL, short: 'An `http://` or `https://` URL' },
  { pattern: /^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$/.source, short: 'A date `YYYY-MM-DD`, optionally followed by `-preview`' },
  { pattern: /^[A-Za-z0-9][-A-Za-z0-9_.]*$/.source, short: 'Letters, digits, `-`, `_` and `.`, starting with a letter or digit' },
  { pattern: /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/.source, short: 'Starts with a letter; letters, digits, `_`, `,` and `:`' },
];
const FORMAT_BY_PATTERN = new Map(FORMATS.map((f) => [new RegExp(f.pattern).source, f.short]));

function rangeWords(node: JsonNode): string | undefined {
  const min = node.minimum !== undefined && node.minimum > Number.MIN_SAFE_INTEGER ? node.minimum : undefined;
  const max = node.maximum !== undefined && node.maximum < Number.MAX_SAFE_INTEGER ? node.maximum : undefined;
  const low = min === undefined ? undefined : `${node.exclusiveMinimum ? 'greater than' : 'at least'} ${formatNumber(min)}`;
  const high = max === undefined ? undefined : `${node.exclusiveMaximum ? 'less than' : 'at most'} ${formatNumber(max)}`;
  if (low && high && !node.exclusiveMinimum && !node.exclusiveMaximum) return `From ${formatNumber(min as number)} to ${formatNumber(max as number)}`;
  const words = [low, high].filter((w) => w !== undefined).join(', ');
  return words ? capitalize(words) : undefined;
}

const capitalize = (text: string) => (text[0]?.toUpperCase() ?? '') + text.slice(1);
const uncapitalize = (text: string) => (/^[A-Z][a-z]/.test(text) ? (text[0]?.toLowerCase() ?? '') + text.slice(1) : text);
const count = (n: number, unit: string, units = `${unit}s`) => `${formatNumber(n)} ${n === 1 ? unit : units}`;

/** Constraints of a value in words, one phrase each, without final stops. */
function constraintWords(node: JsonNode): string[] {
  const words: string[] = [];
  // Descriptions often list the values already, in backticks; repeating them adds nothing.
  const listed = (value: unknown) => node.description?.includes(code(value)) ?? false;
  if (node.enum && !node.enum.every(listed)) words.push(node.enum.length === 1 ? `Must be ${code(node.enum[0])}` : `One of ${listOf(node.enum)}`);
  const range = rangeWords(node);
  if (range) words.push(range);
  if (node.pattern) words.push(FORMAT_BY_PATTERN.get(node.pattern) ?? `Must match ${code(node.pattern)}`);
  if (node.maxLength !== undefined) words.push(`At most ${count(node.maxLength, 'character')}`);
  else if (node.minLength !== undefined && node.minLength > 0 && !node.pattern) words.push('Must not be empty');
  if (node.type === 'array') {
    if (node.minItems !== undefined && node.maxItems !== undefined) words.push(`${formatNumber(node.minItems)} to ${count(node.maxItems, 'item')}`);
    else if (node.maxItems !== undefined) words.push(`At most ${count(node.maxItems, 'item')}`);
    else if (node.minItems !== undefined) words.push(`At least ${count(node.minItems, 'item')}`);
    const items = node.items && !containsStruct(node.items) ? constraintWords(node.items) : [];
    if (items.length) words.push(`Each item: ${items.map(uncapitalize).join(', ')}`);
  }
  const value = mapValue(node);
  if (value) {
    if (node.maxProperties !== undefined) words.push(`At most ${count(node.maxProperties, 'entry', 'entries')}`);
    const values = containsStruct(value) ? [] : constraintWords(value);
    if (values.length) words.push(`Each value: ${values.map(uncapitalize).join(', ')}`);
  }
  return words;
}

function containsStruct(node: JsonNode): boolean {
  if (isStruct(node)) return true;
  if (node.type === 'array' && node.items) return containsStruct(node.items);
  const value = mapValue(node);
  return value ? containsStruct(value) : false;
}

/** The Type column: Go-style (`[]Provider`, `map[string]string`), linked to the section of an object type. */
function typeCell(node: JsonNode, path: string, name: string, names: Map<string, string>): string {
  let prefix = '';
  let current = node;
  let currentPath = path;
  for (;;) {
    const value = mapValue(current);
    if (current.type === 'array' && current.items) {
      prefix += '[]';
      currentPath += '[]';
      current = current.items;
    } else if (value) {
      prefix += 'map[string]';
      currentPath += `.${mapKeySegment(name)}`;
      current = value;
    } else {
      break;
    }
  }
  if (isStruct(current)) return sectionLink(currentPath, `${prefix}${names.get(signature(current)) ?? 'object'}`);
  return code(`${prefix}${current.enum ? 'string' : (current.type ?? 'any')}`);
}

function rowMarkdown(row: Row, names: Map<string, string>): string {
  const name = row.path.slice(row.path.lastIndexOf('.') + 1);
  const description = [row.required ? '**Required.**' : '', row.node.description ?? '', ...constraintWords(row.node)].filter(Boolean).map(sentence).join(' ');
  const defaultValue = row.node.default === undefined ? '' : code(row.node.default);
  return `| ${cell(code(row.path))} | ${cell(typeCell(row.node, row.path, name, names))} | ${cell(defaultValue)} | ${cell(description)} |`;
}

/**
 * A section: intro, then the table of its fields. A chapter's root object (`spec`, `status`) goes straight under the
 * chapter heading, which carries its anchor.
 */
function sectionMarkdown(section: Section, sections: readonly Section[], names: Map<string, string>, options: { heading?: boolean; intro?: string; after?: string } = {}): string {
  const intro: string[] = [];
  if (section.node.description) intro.push(sentence(section.node.description));
  if (section.node.default !== undefined) intro.push(`Optional: when omitted it is ${code(section.node.default)}, so every field below takes its default.`);
  if (section.node.additionalProperties !== false) intro.push('Fields not listed here are accepted.');
  const sameType = section.typeName ? sections.filter((s) => s.typeName === section.typeName && s !== section) : [];
  if (options.intro) intro.push(options.intro);
  if (sameType.length) {
    intro.push(`The same \`${section.typeName}\` type is used at ${sameType.map((s) => sectionLink(s.path)).join(' and ')}.`);
  }
  return [
    ...(options.heading === false ? [] : [`### ${sectionHeading(section.path)}`, '']),
    ...(intro.length ? [intro.join(' '), ''] : []),
    '| Field | Type | Default | Description |',
    '| --- | --- | --- | --- |',
    ...section.rows.map((row) => rowMarkdown(row, names)),
    ...(options.after ? ['', options.after] : []),
  ].join('\n');
}

function sectionsOf(node: JsonNode, path: string, names: Map<string, string>, descend: (path: string) => boolean = () => true): Section[] {
  const sections: Section[] = [];
  collectSections(node, path, names, sections, descend);
  return sections;
}

/** A chapter: its root object's table under the chapter heading, then a section per nested object type. */
function chapterMarkdown(sections: readonly Section[], names: Map<string, string>, extra: { intro?: string; after?: Record<string, string> } = {}): string[] {
  return sections.flatMap((section, i) => {
    const after = extra.after?.[section.path];
    const options = { heading: i > 0, ...(i === 0 && extra.intro ? { intro: extra.intro } : {}), ...(after ? { after } : {}) };
    return [sectionMarkdown(section, sections, names, options), ''];
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The document

function rulesMarkdown(): string {
  const checkedBy = (hasCel: boolean) => (hasCel ? '`kubectl apply`, `llmroute validate`' : '`llmroute validate`');
  const severity = (id: string) => (id === 'pin-dated' ? 'error (warning with `allowFloating`)' : WARNING_RULES.includes(id) ? 'warning' : 'error');
  return [
    '## Cross-field rules',
    '',
    'What the field types above cannot express. `llmroute validate` checks every rule below. Rules with a CEL form are also in the CRD, so the API server rejects a violating object at `kubectl apply` time with the same message. An error rejects the object; a warning is reported and the object is accepted. A finding reads `<what was found>: <message>`.',
    '',
    '| Rule | Severity | Checked by | Message |',
    '| --- | --- | --- | --- |',
    ...RULES.map((rule) => `| ${cell(code(rule.id))} | ${cell(severity(rule.id))} | ${cell(checkedBy((rule.cel ?? []).length > 0))} | ${cell(sentence(rule.message))} |`),
  ].join('\n');
}

function pinsMarkdown(): string {
  return [
    '## Model pins',
    '',
    'Clients ask for `spec.models[].name` (for example `chat`); providers are asked for the model\'s `pin`, or for a fallback step\'s own `model`. A floating alias such as `gpt-4o` or `claude-3-5-sonnet-latest` can change behaviour without a deploy, so every model name sent to a provider must be a dated snapshot.',
    '',
    'A name is a dated snapshot when it ends in `-`, `_` or `@` followed by a release date written `YYYY-MM-DD` or `YYYYMMDD`, with a year from 1900 to 2099, a month from 01 to 12 and a day from 01 to 31:',
    '',
    '| Form | Example |',
    '| --- | --- |',
    '| `-YYYY-MM-DD` (OpenAI, Azure OpenAI) | `gpt-4o-2024-08-06` |',
    '| `-YYYYMMDD` (Anthropic) | `claude-sonnet-4-20250514` |',
    '| `@YYYYMMDD` (Vertex AI) | `claude-3-5-sonnet-v2@20241022` |',
    '',
    `The exact pattern is \`${DATED_SNAPSHOT}\`.`,
    '',
    'The rule (`pin-dated`) covers every name a fallback step sends: `spec.models[].pin`, `spec.models[].fallback[].model`, and the `pin` and `fallback[].model` of flag overrides in `spec.flags[].set.models`.',
    '',
    `- Steps served by a self-hosted provider (type ${listOf(SELF_HOSTED_PROVIDER_TYPES)}) are exempt: weights you host do not change unless you change them, so \`meta-llama/Llama-3.3-70B-Instruct\` is fine there.`,
    '- `allowFloating: true` on a model accepts floating names for that model, flag overrides of it included: `llmroute validate` then warns instead of failing, and the API server accepts the object.',
  ].join('\n');
}

function conventionsMarkdown(): string {
  return [
    '## Conventions',
    '',
    '- Field paths use `[]` for the items of a list and `<name>` for the keys of a map: `spec.environments[].keys.<provider>[]` is one key source in the list of a provider\'s key sources.',
    '- **Required.** marks the fields that must be set; all others are optional. The Default column is the value a field takes when it is left out.',
    '- Formats named in the tables:',
    ...FORMATS.filter((f) => f.long).map((f) => `  - ${capitalize(f.short.replace(/^An? /, ''))}: ${f.long}.`),
  ].join('\n');
}

const STATUS_INTRO =
  'Do not set it yourself. When `status.observedGeneration` is lower than `metadata.generation`, the controller has not yet acted on the latest spec. Each item of `status.environments` reports one environment: gateway replicas, the config hash being served, each key source, each flag\'s percentage and rollout state, and spend so far.';

function conditionsMarkdown(): string {
  return [
    'Condition types:',
    '',
    '| Type | Meaning |',
    '| --- | --- |',
    ...CONDITIONS.map((c) => `| ${cell(code(c.type))} | ${cell(c.meaning)} |`),
  ].join('\n');
}

/** The API reference, docs/api.md. */
export function apiReferenceMarkdown(): string {
  const names = namedTypes();
  const object = sectionsOf(jsonSchemaOf(LLMRoute), '', names, (path) => path === 'metadata');
  const spec = sectionsOf(jsonSchemaOf(LLMRouteSpec), 'spec', names);
  const status = sectionsOf(jsonSchemaOf(LLMRouteStatus), 'status', names);

  const parts = [
    `# ${KIND} API reference (\`${API_VERSION}\`)`,
    '',
    '> Generated by `npm run generate` from `src/api/schema.ts` and `src/api/rules.ts`. Do not edit this file: change the schema and regenerate.',
    '',
    `An ${KIND} describes how an application talks to LLM providers: the providers, the models clients may ask for (each a name mapped to a pinned snapshot and a fallback chain), retries and circuit breaking, callers and their budgets, feature flags, alerts, and the environments the gateway is deployed to.`,
    '',
    `- Group \`${GROUP}\`, version \`${VERSION}\`: \`apiVersion: ${API_VERSION}\`, \`kind: ${KIND}\``,
    `- Plural \`${PLURAL}\`, singular \`${SINGULAR}\`, short ${SHORT_NAMES.length === 1 ? 'name' : 'names'} ${SHORT_NAMES.map(code).join(', ')}, ${CATEGORIES.length === 1 ? 'category' : 'categories'} ${CATEGORIES.map(code).join(', ')}`,
    '- Namespaced',
    '',
    `List routes with \`kubectl get ${SHORT_NAMES[0]}\`. Check a file before applying it with \`llmroute validate <file>\`.`,
    '',
    'Contents: [Example](#example) · [Conventions](#conventions) · [Object](#object) · [Spec](#spec) · [Cross-field rules](#cross-field-rules) · [Model pins](#model-pins) · [Status](#status)',
    '',
    '## Example',
    '',
    'A minimal route; every field left out takes its default. [`examples/`](../examples/) has a local demo with fault-injecting mock providers (`quickstart.yaml`) and a production setup with several providers, budgets, External Secrets and a flag rollout (`support-bot.yaml`).',
    '',
    '```yaml',
    EXAMPLE.trimEnd(),
    '```',
    '',
    conventionsMarkdown(),
    '',
    '## Object',
    '',
    ...chapterMarkdown(object, names),
    '## Spec',
    '',
    ...chapterMarkdown(spec, names),
    rulesMarkdown(),
    '',
    pinsMarkdown(),
    '',
    '## Status',
    '',
    ...chapterMarkdown(status, names, { intro: STATUS_INTRO, after: { 'status.conditions[]': conditionsMarkdown() } }),
  ];
  return `${parts.join('\n').trimEnd()}\n`;
}

/** The minimal example embedded in the reference, for tests. */
export const REFERENCE_EXAMPLE = EXAMPLE;
