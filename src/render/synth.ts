/**
 * Renders every LLMRoute under some paths into one YAML file per route environment: the work behind `cdk8s synth`.
 * Invalid routes stop it with the same lines `llmroute validate` prints, and nothing is written.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatFinding, hasErrors, loadRoutes } from '../api/files.js';
import { renderEnvironment } from './render.js';
import { toYaml } from './yaml.js';

export interface SynthResult {
  written: string[];
  /** `file:line:column: path: message` lines; non-empty with `ok: false` when a route is invalid. */
  messages: string[];
  ok: boolean;
}

export async function synthRoutes(paths: readonly string[], outdir: string, image?: string): Promise<SynthResult> {
  const loaded = await loadRoutes(paths);
  const messages = loaded.findings.map(formatFinding);
  if (hasErrors(loaded.findings)) return { written: [], messages, ok: false };
  const files = new Map<string, string>();
  for (const { route, file } of loaded.routes) {
    for (const environment of route.spec.environments) {
      const name = `${route.metadata.name}-${environment.name}.k8s.yaml`;
      if (files.has(name)) {
        messages.push(`${file}: metadata.name: "${name}" would also be written for a route in another namespace; give the routes distinct names`);
        return { written: [], messages, ok: false };
      }
      files.set(name, toYaml(renderEnvironment({ route, environment: environment.name, ...(image ? { image } : {}) }).objects));
    }
  }
  await mkdir(outdir, { recursive: true });
  const written: string[] = [];
  for (const [name, yaml] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    const path = join(outdir, name);
    await writeFile(path, yaml);
    written.push(path);
  }
  return { written, messages, ok: true };
}
