/**
 * The CRD's promise, checked on a real API server: it installs and is Established, kubectl knows it by its short
 * name and category, the examples are accepted, and every broken LLMRoute that the API server can judge is rejected
 * at `kubectl apply` time with the same message `llmroute validate` prints.
 */
import { beforeAll, describe, expect, it, jest } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { loadRoutes, type LocatedFinding } from '../../src/api/files.js';
import { formatPath } from '../../src/api/paths.js';
import { RULES } from '../../src/api/rules.js';
import { createNamespace, ensureNamespace, kubectl, kubectlOk, type CommandResult } from './cluster.js';

// kubectl runs take a fraction of a second each, dozens of them in a hook; `testTimeout` in a jest project is ignored.
jest.setTimeout(60_000);

const CRD = 'llmroutes.llmroute.dev';
const INVALID = 'test/api/invalid';
const yamlFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort().map((f) => join(dir, f));

/** The namespace a manifest names, if it names one (kubectl refuses `-n` different from it). */
function namespaceOf(file: string): string | undefined {
  const namespaces = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => (d.toJS() as { metadata?: { namespace?: string } } | null)?.metadata?.namespace);
  return namespaces.find((n) => n !== undefined);
}

let namespace: string;

/** `kubectl apply --dry-run=server` of a file, in the namespace it names or the test namespace. */
async function dryRunApply(file: string): Promise<CommandResult> {
  const named = namespaceOf(file);
  if (named) await ensureNamespace(named);
  return kubectl(['apply', '--dry-run=server', '-n', named ?? namespace, '-f', file]);
}

/** Runs `fn` over `items` with at most `limit` at a time (kubectl processes are slow to start; the API server is not). */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<Map<T, R>> {
  const results = new Map<T, R>();
  const queue = [...items];
  await Promise.all(
    Array.from({ length: limit }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) results.set(item, await fn(item));
    }),
  );
  return results;
}

beforeAll(async () => {
  namespace = await createNamespace('crd');
});

describe('the LLMRoute CRD on a real API server', () => {
  it('is Established, with accepted names and a structural schema', async () => {
    const crd = JSON.parse(await kubectlOk(['get', 'crd', CRD, '-o', 'json'])) as { status: { conditions: { type: string; status: string; message: string }[] } };
    const conditions = Object.fromEntries(crd.status.conditions.map((c) => [c.type, c.status]));
    expect(conditions).toMatchObject({ Established: 'True', NamesAccepted: 'True' });
    expect(conditions.NonStructuralSchema).toBeUndefined();
  });

  it('answers to its short name (llmr) and category (llm), with the printer columns', async () => {
    // A real object, in a namespace of its own (the dry runs below must see no existing object).
    const own = await createNamespace('crd-get');
    await kubectlOk(['apply', '-n', own, '-f', 'examples/quickstart.yaml']);
    const table = await kubectlOk(['get', 'llmr', '-n', own]);
    expect(table.split('\n')[0]!.split(/\s+/)).toEqual(['NAME', 'ENVIRONMENTS', 'READY', 'PINS', 'AGE']);
    // No status yet, so READY is blank.
    expect(table).toMatch(/^quickstart\s+dev\s+mock-2025-01-01\s+\d+s$/m);
    const wide = await kubectlOk(['get', 'llmr', '-n', own, '-o', 'wide']);
    expect(wide.split('\n')[0]!.split(/\s+/)).toEqual(['NAME', 'ENVIRONMENTS', 'READY', 'REASON', 'PINS', 'AGE']);
    expect((await kubectlOk(['get', 'llm', '-n', own, '-o', 'name'])).trim()).toBe('llmroute.llmroute.dev/quickstart');
    // Across namespaces too, with nothing else needed from the caller.
    expect((await kubectl(['get', 'llmr', '--all-namespaces'])).code).toBe(0);
    expect((await kubectl(['get', 'llm', '--all-namespaces'])).code).toBe(0);
  });

  it('publishes its schema, so kubectl explain documents the fields', async () => {
    const explained = await kubectlOk(['explain', 'llmroutes.spec.models.pin']);
    expect(explained).toMatch(/^GROUP:\s+llmroute\.dev$/m);
    expect(explained).toMatch(/^KIND:\s+LLMRoute$/m);
    expect(explained).toMatch(/^VERSION:\s+v1alpha1$/m);
    expect(explained).toContain('Model snapshot sent to providers');
  });

  it.each(['examples/support-bot.yaml', 'examples/quickstart.yaml'])('accepts %s (kubectl apply --dry-run=server)', async (file) => {
    const result = await dryRunApply(file);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^llmroute\.llmroute\.dev\/\S+ created \(server dry run\)$/m);
  });

  it.each([...yamlFiles('test/api/warnings'), 'test/render/routes/variants.yaml'])('accepts %s, which is legal though llmroute validate may warn', async (file) => {
    const result = await dryRunApply(file);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/ created \(server dry run\)$/m);
  });
});

/**
 * Broken LLMRoutes (test/api/invalid) that the API server cannot judge the way `llmroute validate` does, each with
 * what kubectl does instead and why. Every other file must be rejected by the API server with the validator's
 * messages (see `expectedFragments`). An entry here is a decision, not a skip: its expectation is asserted too.
 */
const EXCEPTIONS: Record<string, { reason: string; code: number; stderr?: RegExp; stdout?: RegExp }> = {
  'malformed.yaml': {
    reason: 'not YAML: kubectl cannot parse it, so it never reaches the API server',
    code: 1,
    stderr: /error parsing .*malformed\.yaml: error converting YAML to JSON: yaml: line \d+/,
  },
  'duplicate-key.yaml': {
    reason:
      "kubectl's YAML reader does not reject duplicate keys: the last `auth` wins silently. The API server then rejects the object, " +
      'but for the fields missing from the truncated spec, not for the duplicate',
    code: 1,
    stderr: /The LLMRoute "broken" is invalid: [\s\S]*spec\.providers: Required value/,
  },
  'no-route.yaml': {
    reason: 'a lone Secret: nothing wrong for the API server; llmroute validate complains that there is no LLMRoute in the file',
    code: 0,
    stdout: /^secret\/keys created \(server dry run\)$/m,
  },
  'wrong-api-version.yaml': {
    reason: 'the API server serves no llmroute.dev/v1, so kubectl finds no resource to send it to (also a rejection)',
    code: 1,
    stderr: /no matches for kind "LLMRoute" in version "llmroute\.dev\/v1"/,
  },
  'wrong-kind.yaml': {
    reason: 'kinds are case-sensitive: kubectl finds no resource for LlmRoute (also a rejection)',
    code: 1,
    stderr: /no matches for kind "LlmRoute" in version "llmroute\.dev\/v1alpha1"/,
  },
  'unknown-field.yaml': {
    reason: "kubectl's strict field validation (the default) makes the API server refuse unknown fields, with its own wording and no suggestion",
    code: 1,
    stderr: /strict decoding error: unknown field "spec\.providers\[0\]\.limts"/,
  },
  'route-name-dns1035.yaml': {
    reason:
      'the validator checks metadata.name against DNS-1035 as a schema finding; the API server checks only DNS-1123 subdomain for ' +
      "custom resources, and catches it through the route-name CEL rule, reported at spec.environments with that rule's message",
    code: 1,
    stderr: new RegExp(`spec\\.environments: Invalid value: ${RULES.find((r) => r.id === 'route-name')!.message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
  },
};

/**
 * What the API server's rejection must contain for each error the validator finds:
 * - a cross-field rule's finding: the rule's message, which is the CEL rule's static message. The validator prefixes
 *   it with what it found (`"m" is used twice: ...`) and reports the exact place; the API server reports the rule's
 *   `fieldPath`, often an enclosing list (`spec.models` for `spec.models[0].fallback[1].provider`).
 * - a schema finding (type, range, pattern, enum, required): the field path, followed by the API server's reason.
 *   The wording differs (`must be at most 1, not 80` vs `should be less than or equal to 1`); the path is the same.
 */
function expectedFragments(finding: LocatedFinding): string[] {
  if (finding.rule) {
    const rule = RULES.find((r) => r.id === finding.rule);
    if (!rule?.cel) throw new Error(`rule ${finding.rule} has no CEL form, so the API server cannot enforce it`);
    return [rule.message];
  }
  return [`${formatPath(finding.path)}: `];
}

describe('broken LLMRoutes are rejected by the API server (kubectl apply --dry-run=server)', () => {
  const files = yamlFiles(INVALID);
  let results: Map<string, CommandResult>;

  beforeAll(async () => {
    results = await pool(files, 4, (file) => kubectl(['apply', '--dry-run=server', '-n', namespace, '-f', file]));
  });

  it('lists only existing files as exceptions', () => {
    const names = files.map((f) => f.slice(INVALID.length + 1));
    expect(Object.keys(EXCEPTIONS).filter((name) => !names.includes(name))).toEqual([]);
  });

  const judged = files.filter((f) => !(f.slice(INVALID.length + 1) in EXCEPTIONS));

  it.each(judged)('%s is rejected with the validator\'s messages', async (file) => {
    const errors = (await loadRoutes([file])).findings.filter((f) => f.severity === 'error');
    expect(errors.length).toBeGreaterThan(0);
    const result = results.get(file)!;
    expect(result.code).toBe(1);
    // The API server judged the object (HTTP 422 Invalid), rather than kubectl failing before sending it.
    expect(result.stderr).toMatch(/^The LLMRoute "[^"]+" is invalid: /m);
    for (const finding of errors) {
      for (const fragment of expectedFragments(finding)) {
        if (!result.stderr.includes(fragment)) throw new Error(`${file}: expected stderr to contain ${JSON.stringify(fragment)} for ${formatPath(finding.path)}: ${finding.message}\nstderr:\n${result.stderr}`);
      }
    }
  });

  it('multi-document.yaml: the Secret and the valid LLMRoute next to the broken one are accepted', () => {
    const result = results.get(join(INVALID, 'multi-document.yaml'))!;
    expect(result.stdout).toMatch(/^secret\/keys created \(server dry run\)$/m);
    expect(result.stdout).toMatch(/^llmroute\.llmroute\.dev\/good created \(server dry run\)$/m);
    expect(result.stderr).toMatch(/^The LLMRoute "bad" is invalid: /);
  });

  it.each(Object.entries(EXCEPTIONS).map(([name, expected]) => [name, expected.reason, expected] as const))('%s is an exception: %s', (name, _reason, expected) => {
    const result = results.get(join(INVALID, name))!;
    expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
      code: expected.code,
      stdout: expected.stdout ? expect.stringMatching(expected.stdout) : expect.any(String),
      stderr: expected.stderr ? expect.stringMatching(expected.stderr) : '',
    });
  });
});
