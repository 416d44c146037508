/**
 * Loopback ports for the servers tests start. The implementation lives in the k8s harness, which jest's globalSetup
 * also loads and which therefore may import nothing relative (see its header).
 */
import { freePorts } from '../k8s/harness.js';

export { freePorts };

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0] as number;
}
