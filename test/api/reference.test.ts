import { describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import { z } from 'zod';
import { CONDITIONS, REFERENCE_EXAMPLE, WARNING_RULES, apiReferenceMarkdown } from '../../src/api/reference.js';
import { RULES } from '../../src/api/rules.js';
import { LLMRouteSpec, LLMRouteStatus } from '../../src/api/schema.js';
import { validateRoute } from '../../src/api/validate.js';

interface Node {
  type?: string;
  default?: unknown;
  description?: string;
  properties?: Record<string, Node>;
  additionalProperties?: Node | boolean;
  items?: Node;
}

const jsonSchema = (schema: z.ZodType) => z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input' }) as Node;

/** Every field of every object in the schema, with its path: `[]` for list items, `<*>` for any map key. */
function fields(node: Node, path: string): { path: string; node: Node }[] {
  if (node.type === 'array' && node.items) return fields(node.items, `${path}[]`);
  if (node.type === 'object' && node.properties) {
    return Object.entries(node.properties).flatMap(([name, child]) => [{ path: `${path}.${name}`, node: child }, ...fields(child, `${path}.${name}`)]);
  }
  if (node.type === 'object' && typeof node.additionalProperties === 'object') return fields(node.additionalProperties, `${path}.<*>`);
  return [];
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The table row documenting `path`; map keys match any `<name>`. */
function rowFor(markdown: string, path: string): string | undefined {
  const pattern = new RegExp(`^\\| \`${escapeRegExp(path).replace(/<\\\*>/g, '<[a-z]+>')}\` \\|.*$`, 'm');
  return pattern.exec(markdown)?.[0];
}

/** Cells of a table row, splitting on unescaped pipes. */
const cells = (row: string) => row.slice(1, -1).split(/(?<!\\)\|/);

/** GitHub's heading anchors, duplicates numbered. */
function headingAnchors(markdown: string): string[] {
  const seen = new Map<string, number>();
  return [...markdown.matchAll(/^#{1,6} (.*)$/gm)].map((m) => {
    const slug = (m[1] as string)
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    return n ? `${slug}-${n}` : slug;
  });
}

const markdown = apiReferenceMarkdown();

describe('the API reference', () => {
  it.each([
    ['spec', LLMRouteSpec],
    ['status', LLMRouteStatus],
  ] as const)('has a row for every field of %s, under its full path', (root, schema) => {
    const all = fields(jsonSchema(schema), root);
    expect(all.length).toBeGreaterThan(root === 'spec' ? 80 : 20);
    const missing = all.filter((f) => rowFor(markdown, f.path) === undefined).map((f) => f.path);
    expect(missing).toEqual([]);
  });

  it('shows every default in the row of its field', () => {
    const defaults = fields(jsonSchema(LLMRouteSpec), 'spec').filter((f) => f.node.default !== undefined);
    expect(defaults.map((f) => f.path)).toEqual(expect.arrayContaining(['spec.models[].timeouts.firstTokenSeconds', 'spec.environments[].budget.alertAt']));
    for (const { path, node } of defaults) {
      const shown = typeof node.default === 'string' ? node.default : JSON.stringify(node.default);
      expect([path, cells(rowFor(markdown, path) ?? '| | | | |')[2]?.trim()]).toEqual([path, `\`${shown}\``]);
    }
  });

  it('shows every description in the row of its field', () => {
    for (const { path, node } of fields(jsonSchema(LLMRouteSpec), 'spec')) {
      if (node.description) expect([path, rowFor(markdown, path)]).toEqual([path, expect.stringContaining(node.description.replace(/\|/g, '\\|'))]);
    }
  });

  it('lists every cross-field rule with its message and severity', () => {
    for (const rule of RULES) {
      const row = new RegExp(`^\\| \`${escapeRegExp(rule.id)}\` \\|.*$`, 'm').exec(markdown)?.[0];
      expect([rule.id, row]).toEqual([rule.id, expect.stringContaining(rule.message)]);
      const severity = cells(row as string)[1]?.trim();
      expect([rule.id, severity?.split(' ')[0]]).toEqual([rule.id, WARNING_RULES.includes(rule.id) ? 'warning' : 'error']);
    }
    expect(RULES.map((r) => r.id)).toEqual(expect.arrayContaining([...WARNING_RULES]));
  });

  it('gives each rule the severity its findings have', () => {
    const route = (spec: Record<string, unknown>) => ({
      apiVersion: 'llmroute.dev/v1alpha1',
      kind: 'LLMRoute',
      metadata: { name: 'demo' },
      spec: {
        providers: [{ name: 'hosted', type: 'openai', keyRequired: false }],
        models: [{ name: 'chat', pin: 'gpt-4o-2024-08-06', fallback: [{ provider: 'hosted' }] }],
        environments: [{ name: 'dev' }],
        auth: 'none',
        ...spec,
      },
    });
    const severities = (value: unknown, id: string) => {
      const message = RULES.find((r) => r.id === id)?.message as string;
      return validateRoute(value).findings.filter((f) => f.message.endsWith(message)).map((f) => f.severity);
    };
    const documented = (id: string) => cells(new RegExp(`^\\| \`${escapeRegExp(id)}\` \\|.*$`, 'm').exec(markdown)?.[0] ?? '| | | | |')[1]?.trim();
    const client = { name: 'web', tokenSecretRef: { name: 'tokens', key: 'web' } };
    const warnings: [string, unknown][] = [
      ['auth-none-with-clients', route({ clients: [client] })],
      ['auth-tokens-without-clients', route({ auth: 'tokens' })],
      ['flag-inert', route({ flags: [{ name: 'f', set: {} }] })],
    ];
    for (const [id, value] of warnings) {
      expect([id, severities(value, id)]).toEqual([id, ['warning']]);
      expect([id, documented(id)]).toEqual([id, 'warning']);
    }
    const floating = (allowFloating: boolean) => route({ models: [{ name: 'chat', pin: 'gpt-4o', allowFloating, fallback: [{ provider: 'hosted' }] }] });
    expect(severities(floating(false), 'pin-dated')).toEqual(['error']);
    expect(severities(floating(true), 'pin-dated')).toEqual(['warning']);
    expect(documented('pin-dated')).toBe('error (warning with `allowFloating`)');
    expect(documented('budget-limit')).toBe('error');
  });

  it('describes every condition type the schema names', () => {
    const description = (jsonSchema(LLMRouteStatus).properties?.conditions?.description ?? '') as string;
    const named = [...description.matchAll(/`([A-Z][A-Za-z]+)`/g)].map((m) => m[1]);
    expect(named.length).toBeGreaterThan(3);
    expect(CONDITIONS.map((c) => c.type).sort()).toEqual([...new Set(named)].sort());
    for (const { type } of CONDITIONS) expect(markdown).toMatch(new RegExp(`^\\| \`${type}\` \\| .+ \\|$`, 'm'));
  });

  it('embeds an example that validates without findings', () => {
    expect(markdown).toContain(`\`\`\`yaml\n${REFERENCE_EXAMPLE}\`\`\``);
    expect(validateRoute(parse(REFERENCE_EXAMPLE))).toMatchObject({ findings: [] });
  });

  it('has tables whose rows all have as many cells as their header', () => {
    const lines = markdown.split('\n');
    let columns = 0;
    lines.forEach((line, i) => {
      if (!line.startsWith('|')) {
        columns = 0;
        return;
      }
      expect([i + 1, line.endsWith('|')]).toEqual([i + 1, true]);
      if (columns === 0) columns = cells(line).length;
      expect([i + 1, cells(line).length]).toEqual([i + 1, columns]);
    });
  });

  it('links only to headings that exist, and no two headings share an anchor', () => {
    const anchors = headingAnchors(markdown);
    expect(anchors.filter((a, i) => anchors.indexOf(a) !== i)).toEqual([]);
    const targets = [...markdown.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]);
    expect(targets.length).toBeGreaterThan(30);
    expect(targets.filter((t) => !anchors.includes(t as string))).toEqual([]);
  });

  it('is the same on every call and ends with one newline', () => {
    expect(apiReferenceMarkdown()).toBe(markdown);
    expect(markdown.endsWith('\n')).toBe(true);
    expect(markdown.endsWith('\n\n')).toBe(false);
  });
});
