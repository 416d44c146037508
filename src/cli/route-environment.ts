import { formatFinding, hasErrors, loadRoutes } from '../api/files.js';
import type { LLMRoute } from '../api/schema.js';

export interface RouteEnvironment {
  route: LLMRoute;
  environment: string;
}

/**
 * Loads the one LLMRoute of `file` and picks an environment: the one named, or the only one. Problems are written to
 * `err` as `command: ...` lines; the result is then the exit code (1 for an invalid route, 2 for a usage mistake).
 */
export async function loadRouteEnvironment(command: string, file: string, env: string | undefined, err: NodeJS.WritableStream): Promise<RouteEnvironment | number> {
  const loaded = await loadRoutes([file]);
  for (const found of loaded.findings) err.write(`${formatFinding(found)}\n`);
  if (hasErrors(loaded.findings)) return 1;
  if (loaded.routes.length !== 1) {
    err.write(`llmroute ${command}: ${file} must hold exactly one LLMRoute; it holds ${loaded.routes.length}\n`);
    return 2;
  }
  const route = (loaded.routes[0] as (typeof loaded.routes)[number]).route;
  const names = route.spec.environments.map((e) => e.name);
  const environment = env ?? (names.length === 1 ? names[0] : undefined);
  if (!environment || !names.includes(environment)) {
    err.write(`llmroute ${command}: ${env ? `no environment "${env}"` : 'choose an environment with --env'}; "${route.metadata.name}" has ${names.join(', ')}\n`);
    return 2;
  }
  return { route, environment };
}
