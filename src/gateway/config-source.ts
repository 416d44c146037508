/**
 * The gateway's config file, watched. A new version is parsed and validated before it replaces the one serving;
 * a config that fails validation is rejected, logged and counted, and the old one keeps serving. Kubernetes updates
 * a mounted ConfigMap by swapping a symlink, which file watchers miss, so the file is polled and compared by hash.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { formatPath } from '../api/paths.js';
import { GatewayConfig } from '../api/gateway-config.js';

export type ConfigLoad = { ok: true; config: GatewayConfig; hash: string } | { ok: false; problem: string };

/** Parses and validates a config document; the problem names the field and what is wrong. */
export function parseConfig(text: string, source: string): ConfigLoad {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { ok: false, problem: `${source}: not valid JSON: ${(error as Error).message}` };
  }
  const parsed = GatewayConfig.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 5).map((i) => `${formatPath(i.path as (string | number)[])}: ${i.message}`);
    return { ok: false, problem: `${source}: not a valid gateway config: ${issues.join('; ')}` };
  }
  return { ok: true, config: parsed.data, hash: createHash('sha256').update(text).digest('hex').slice(0, 16) };
}

export async function readConfig(path: string): Promise<ConfigLoad> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    return { ok: false, problem: `${path}: cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})` };
  }
  return parseConfig(text, path);
}
