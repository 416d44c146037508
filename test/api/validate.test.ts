import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadRoutes, type LocatedFinding } from '../../src/api/files.js';
import { formatPath } from '../../src/api/paths.js';
import { RULES } from '../../src/api/rules.js';
import { validateCommand } from '../../src/cli/validate.js';
import { captureStream } from '../support/streams.js';

const INVALID = 'test/api/invalid';
const WARNINGS = 'test/api/warnings';

/** Each fixture states what it must produce in `# expect:` (errors) or `# warn:` (warnings) comment lines. */
function expectations(file: string, marker: 'expect' | 'warn'): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith(`# ${marker}: `))
    .map((line) => line.slice(`# ${marker}: `.length));
}

const withoutLocation = (f: LocatedFinding) => `${f.path.length ? `${formatPath(f.path)}: ` : ''}${f.severity === 'warning' ? 'warning: ' : ''}${f.message}`;
const fixtures = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.yaml')).map((f) => join(dir, f));

describe('llmroute validate on broken LLMRoutes', () => {
  it.each(fixtures(INVALID))('%s fails with the expected path and message, and nothing else', async (file) => {
    const expected = expectations(file, 'expect');
    expect(expected.length).toBeGreaterThan(0);
    const { findings } = await loadRoutes([file]);
    const errors = findings.filter((f) => f.severity === 'error').map(withoutLocation);
    for (const text of expected) expect(errors.some((line) => line.includes(text))).toBe(true);
    expect(errors).toHaveLength(expected.length);
    for (const found of findings) expect(found.file).toBe(file);
  });

  it.each(fixtures(INVALID))('%s makes the command exit 1 and print file:line:column', async (file) => {
    const out = captureStream();
    const err = captureStream();
    expect(await validateCommand([file], out.stream, err.stream)).toBe(1);
    for (const line of out.text().trim().split('\n')) expect(line).toMatch(new RegExp(`^${file.replace(/[.]/g, '\\.')}(:\\d+:\\d+)?: `));
    expect(err.text()).toMatch(/^invalid: \d+ errors?/);
  });

  it('covers every error rule with at least one fixture', async () => {
    const { findings } = await loadRoutes([INVALID]);
    const fired = new Set(findings.map((f) => f.rule));
    const uncovered = RULES.filter((r) => r.cel && !fired.has(r.id)).map((r) => r.id);
    expect(uncovered).toEqual([]);
  });

  it('points at the line of the offending field', async () => {
    const { findings } = await loadRoutes([join(INVALID, 'unknown-field.yaml')]);
    expect(findings[0]?.position).toEqual({ line: 7, column: 38 });
  });
});

describe('llmroute validate on questionable but legal LLMRoutes', () => {
  it.each(fixtures(WARNINGS))('%s passes with the expected warning', async (file) => {
    const { findings, routes } = await loadRoutes([file]);
    expect(routes).toHaveLength(1);
    expect(findings.map(withoutLocation)).toEqual(expectations(file, 'warn').map((w) => expect.stringContaining(w)));
    const out = captureStream();
    const err = captureStream();
    expect(await validateCommand([file], out.stream, err.stream)).toBe(0);
    expect(err.text()).toMatch(/^valid: 1 LLMRoute in 1 file \(1 warning\)/);
  });
});

describe('llmroute validate on directories', () => {
  it('accepts the examples', async () => {
    const out = captureStream();
    const err = captureStream();
    expect(await validateCommand(['examples/'], out.stream, err.stream)).toBe(0);
    expect(out.text()).toBe('');
    expect(err.text()).toBe('valid: 2 LLMRoutes in 2 files\n');
  });

  it('reports a missing path instead of throwing', async () => {
    const { findings } = await loadRoutes(['test/api/no-such-dir']);
    expect(findings).toEqual([expect.objectContaining({ message: 'cannot read: no such file or directory' })]);
  });

  it('rejects two routes with the same name and namespace', async () => {
    const { findings } = await loadRoutes(['examples/quickstart.yaml', 'examples/quickstart.yaml']);
    expect(findings.map((f) => f.message)).toEqual([expect.stringContaining('LLMRoute "/quickstart" is also defined in examples/quickstart.yaml')]);
  });

  it('needs at least one path', async () => {
    const out = captureStream();
    const err = captureStream();
    expect(await validateCommand([], out.stream, err.stream)).toBe(2);
    expect(err.text()).toContain('name at least one file or directory');
  });
});
