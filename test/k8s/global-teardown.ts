/** jest globalTeardown of the `k8s` project: stops the control plane that global-setup.ts started. */
import type { ControlPlane } from './harness.js';

// Not imported from global-setup.ts: jest loads each of these files on its own, as CommonJS without moduleNameMapper.
const CONTROL_PLANE_KEY = '__llmrouteControlPlane';

export default async function globalTeardown(): Promise<void> {
  const store = globalThis as Record<string, unknown>;
  const controlPlane = store[CONTROL_PLANE_KEY] as ControlPlane | undefined;
  delete store[CONTROL_PLANE_KEY];
  for (const name of ['LLMROUTE_TEST_KUBECONFIG', 'LLMROUTE_TEST_SERVER', 'LLMROUTE_TEST_TOOLS', 'LLMROUTE_TEST_STATE']) delete process.env[name];
  await controlPlane?.stop();
}
