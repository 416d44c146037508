import { execFile } from 'node:child_process';
import { findExecutable } from './executable.js';

/**
 * promtool, from Debian's `prometheus` package, for `check rules` and `test rules`. Missing promtool is a failure,
 * not a skip: CI installs it, and a rule test that silently does not run proves nothing.
 */
const INSTALL_HINT = 'promtool is not installed: run `apt-get install -y prometheus` (Debian/Ubuntu; CI installs it), which provides /usr/bin/promtool';

export function findPromtool(): string {
  return findExecutable('promtool', '/usr/bin/promtool', INSTALL_HINT);
}

export interface PromtoolRun {
  /** The exit code: 0 when every check or test passed. */
  code: number;
  /** stdout and stderr together, for failure messages. */
  output: string;
}

/** Runs `promtool <args>`; never throws for a non-zero exit, which is the caller's to judge. */
export function promtool(args: string[], cwd?: string): Promise<PromtoolRun> {
  const binary = findPromtool();
  return new Promise((resolve, reject) => {
    execFile(binary, args, { cwd, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      if (error && typeof error.code !== 'number') return reject(new Error(`promtool ${args.join(' ')} did not run: ${error.message}\n${output}`));
      resolve({ code: error ? (error.code as number) : 0, output });
    });
  });
}

/** `promtool check rules` on rule files. */
export const checkRules = (...files: string[]) => promtool(['check', 'rules', ...files]);

/** `promtool test rules` on unit test files (rule_files in them are relative to each test file). */
export const testRules = (...files: string[]) => promtool(['test', 'rules', ...files]);
