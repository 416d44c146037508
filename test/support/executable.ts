import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * An executable from a Debian package: its usual path, then the PATH. Missing is a failure that says how to install
 * it, not a skip: CI installs it, and a test that silently does not run proves nothing.
 */
export function findExecutable(name: string, usualPath: string, installHint: string): string {
  const candidates = [usualPath, ...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, name))];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; try the next one
    }
  }
  throw new Error(installHint);
}
