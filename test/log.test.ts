/**
 * The logger's batching: one write per turn of the event loop, lines in order, and nothing lost when the process
 * exits with lines still pending.
 */
import { execFile } from 'node:child_process';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { promisify } from 'node:util';
import { describe, expect, it } from '@jest/globals';
import { batchedWriter } from '../src/log.js';

describe('batchedWriter', () => {
  it('writes the lines of one turn in one write, in order', async () => {
    const writes: string[] = [];
    const write = batchedWriter((text) => writes.push(text));
    write('a\n');
    write('b\n');
    expect(writes).toEqual([]);
    await nextTurn();
    write('c\n');
    await nextTurn();
    expect(writes).toEqual(['a\nb\n', 'c\n']);
  });

  it('writes at once when a turn has logged a lot', () => {
    const writes: string[] = [];
    const write = batchedWriter((text) => writes.push(text));
    const line = `${'x'.repeat(1023)}\n`;
    for (let i = 0; i < 64; i++) write(line);
    expect(writes).toHaveLength(1);
    expect(writes[0]).toHaveLength(64 * 1024);
  });

  it('writes what is pending when the process exits', async () => {
    // A real process: log a line, then exit in the same turn, as a fatal error path does.
    const script = `import { createLogger } from './src/log.ts'; createLogger()('error', 'last words', { code: 3 }); process.exit(3);`;
    const run = promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: process.cwd() });
    const failure = (await run.then(() => undefined, (error: unknown) => error)) as { code: number; stderr: string };
    expect(failure.code).toBe(3);
    expect(JSON.parse(failure.stderr.trim())).toMatchObject({ level: 'error', msg: 'last words', code: 3 });
  });
});
