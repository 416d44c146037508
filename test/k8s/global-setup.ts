/**
 * jest globalSetup of the `k8s` project: starts ONE control plane for the whole run (see harness.ts) and tells the
 * test workers where it is through environment variables, which they inherit from this (the parent) process:
 *
 *   LLMROUTE_TEST_KUBECONFIG  admin kubeconfig (system:masters)
 *   LLMROUTE_TEST_SERVER      https://127.0.0.1:<port>
 *   LLMROUTE_TEST_TOOLS       directory with kubectl and helm
 *   LLMROUTE_TEST_STATE       state.json: pids and command lines, for restartApiServer() and kubeconfigFor() in cluster.ts
 *
 * jest loads this file as CommonJS, without moduleNameMapper, so it reaches the harness through a path computed at
 * run time (`import('./harness.js')` would look for a .js file that does not exist).
 */
import { join } from 'node:path';
import type * as Harness from './harness.js';

const CONTROL_PLANE_KEY = '__llmrouteControlPlane';

export default async function globalSetup(_globalConfig: unknown, projectConfig: { rootDir: string }): Promise<void> {
  const harness = (await import(join(projectConfig.rootDir, 'test/k8s/harness.ts'))) as typeof Harness;
  const controlPlane = await harness.startControlPlane({ root: projectConfig.rootDir });
  (globalThis as Record<string, unknown>)[CONTROL_PLANE_KEY] = controlPlane satisfies Harness.ControlPlane;
  process.env.LLMROUTE_TEST_KUBECONFIG = controlPlane.kubeconfigPath;
  process.env.LLMROUTE_TEST_SERVER = controlPlane.server;
  process.env.LLMROUTE_TEST_TOOLS = controlPlane.toolsDir;
  process.env.LLMROUTE_TEST_STATE = controlPlane.statePath;
}
