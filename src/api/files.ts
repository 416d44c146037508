/**
 * Loading LLMRoutes from files and directories: the I/O edge shared by `llmroute validate`, `llmroute render`,
 * `llmroute up` and `cdk8s synth`. Everything it decides is done by the pure functions it calls.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDocuments, type Position } from './documents.js';
import { formatPath } from './paths.js';
import type { Finding } from './rules.js';
import type { LLMRoute } from './schema.js';
import { hasErrors, isLLMRouteDocument, validateRoute } from './validate.js';

const MANIFEST = /\.(ya?ml|json)$/i;

export interface LocatedFinding extends Finding {
  file: string;
  position?: Position;
}

export interface LoadedRoute {
  file: string;
  /** 1-based document index within the file. */
  document: number;
  route: LLMRoute;
}

export interface LoadResult {
  routes: LoadedRoute[];
  findings: LocatedFinding[];
  files: number;
}

/** Manifest files named directly, or found below named directories, in a stable order. */
async function expand(path: string): Promise<{ file: string; explicit: boolean }[]> {
  const info = await stat(path);
  if (!info.isDirectory()) return [{ file: path, explicit: true }];
  const entries = (await readdir(path, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
  const files: { file: string; explicit: boolean }[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
    const child = join(path, entry.name);
    if (entry.isDirectory()) files.push(...(await expand(child)));
    else if (MANIFEST.test(entry.name)) files.push({ file: child, explicit: false });
  }
  return files;
}

/** Validates every LLMRoute in one file's text. Documents of other kinds are left alone. */
export function loadText(text: string, file: string, explicit = true): LoadResult {
  const routes: LoadedRoute[] = [];
  const findings: LocatedFinding[] = [];
  let seen = 0;
  for (const doc of parseDocuments(text)) {
    const locate = (found: Finding): LocatedFinding => {
      const position = doc.locate(found.path);
      return position ? { ...found, file, position } : { ...found, file };
    };
    if (doc.errors.length) {
      findings.push(...doc.errors.map(locate));
      seen++;
      continue;
    }
    if (!isLLMRouteDocument(doc.value)) continue;
    seen++;
    const validation = validateRoute(doc.value);
    findings.push(...validation.findings.map(locate));
    if (validation.route) routes.push({ file, document: doc.index, route: validation.route });
  }
  if (seen === 0 && explicit) {
    findings.push({ file, path: [], severity: 'error', message: 'no LLMRoute in this file (expected apiVersion: llmroute.dev/v1alpha1, kind: LLMRoute)' });
  }
  return { routes, findings, files: 1 };
}

/** Loads every LLMRoute under the given files and directories. Unreadable paths become findings, not exceptions. */
export async function loadRoutes(paths: readonly string[]): Promise<LoadResult> {
  const result: LoadResult = { routes: [], findings: [], files: 0 };
  for (const path of paths) {
    let files: { file: string; explicit: boolean }[];
    try {
      files = await expand(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const reason = code === 'ENOENT' ? 'no such file or directory' : code === 'EACCES' ? 'permission denied' : String(error);
      result.findings.push({ file: path, path: [], severity: 'error', message: `cannot read: ${reason}` });
      continue;
    }
    const before = result.routes.length + result.findings.length;
    for (const { file, explicit } of files) {
      const loaded = loadText(await readFile(file, 'utf8'), file, explicit);
      result.routes.push(...loaded.routes);
      result.findings.push(...loaded.findings);
      result.files++;
    }
    if (result.routes.length + result.findings.length === before && files.every((f) => !f.explicit)) {
      result.findings.push({ file: path, path: [], severity: 'error', message: 'no LLMRoute found in this directory' });
    }
  }
  const names = new Map<string, LoadedRoute>();
  for (const loaded of result.routes) {
    const key = `${loaded.route.metadata.namespace ?? ''}/${loaded.route.metadata.name}`;
    const first = names.get(key);
    if (first) {
      result.findings.push({ file: loaded.file, path: ['metadata', 'name'], severity: 'error', message: `LLMRoute "${key}" is also defined in ${first.file}; names must be unique per namespace` });
    }
    names.set(key, loaded);
  }
  return result;
}

/** `file:line:column: path: message`, the form editors and CI annotations understand. */
export function formatFinding(found: LocatedFinding): string {
  const where = found.position ? `${found.file}:${found.position.line}:${found.position.column}` : found.file;
  const path = found.path.length ? `${formatPath(found.path)}: ` : '';
  return `${where}: ${path}${found.severity === 'warning' ? 'warning: ' : ''}${found.message}`;
}

export { hasErrors };
