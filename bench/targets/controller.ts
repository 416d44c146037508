/**
 * The llmroute controller as the benchmark runs it: `startController` in its own process (so that its memory is its
 * own), with every request it sends to the API server counted. Counting wraps `http(s).request` and `fetch`, which
 * every client in the process goes through, before the controller starts.
 *
 * Usage: controller.ts <kubeconfig> <namespace> [workers]. Prints `{"stats": "http://127.0.0.1:PORT/"}` once started; GET on
 * that URL answers the counts so far. Stops on SIGTERM.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { syncBuiltinESMExports } from 'node:module';
import * as k8s from '@kubernetes/client-node';
import { DEFAULT_WORKERS, startController } from '../../src/controller/controller.js';
import { createLogger } from '../../src/log.js';

const [kubeconfig, namespace, workers] = process.argv.slice(2);
if (!kubeconfig || !namespace) throw new Error('usage: controller.ts <kubeconfig> <namespace> [workers]');

const counts: Record<string, number> = {};
/** The same requests by verb and resource (`PATCH configmaps`, `PATCH llmroutes/status`): where they go. */
const byResource: Record<string, number> = {};
const count = (method: string | undefined, url: string) => {
  const key = `${(method ?? 'GET').toUpperCase()}${/[?&]watch=(true|1)/.test(url) ? ' (watch)' : ''}`;
  counts[key] = (counts[key] ?? 0) + 1;
  const parts = new URL(url, 'http://x').pathname.split('/');
  const at = parts.indexOf('namespaces');
  const resource = at >= 0 && parts.length > at + 2 ? [parts[at + 2], parts[at + 4]].filter(Boolean).join('/') : parts.slice(3).join('/');
  byResource[`${key} ${resource}`] = (byResource[`${key} ${resource}`] ?? 0) + 1;
};

type RequestFn = (...args: unknown[]) => http.ClientRequest;
for (const module of [http, https] as unknown as { request: RequestFn }[]) {
  const original = module.request;
  module.request = function (this: unknown, ...args: unknown[]) {
    const [first, second] = args;
    const options = (typeof first === 'object' && first !== null && !(first instanceof URL) ? first : typeof second === 'object' && second !== null ? second : {}) as { method?: string; path?: string };
    const url = typeof first === 'string' ? first : first instanceof URL ? first.href : (options.path ?? '');
    count(options.method, url);
    return original.apply(this, args);
  };
}
syncBuiltinESMExports();
const originalFetch = globalThis.fetch;
globalThis.fetch = (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  count(init?.method ?? (input instanceof Request ? input.method : 'GET'), url);
  return originalFetch(input, init);
};

const kc = new k8s.KubeConfig();
kc.loadFromFile(kubeconfig);
const log = createLogger({ level: 'warn', base: { component: 'controller' } });
// The CLI's defaults (workers unless given, 5-minute resync); no leader election (one replica).
const controller = await startController({ kc, namespaces: [namespace], workers: Number(workers ?? DEFAULT_WORKERS), resyncMs: 300_000, metricsPort: 0, healthPort: 0, log });
const stats = http.createServer((_request, response) => {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ total, byVerb: counts, byResource, leader: controller.isLeader() }));
});
stats.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ stats: `http://127.0.0.1:${(stats.address() as AddressInfo).port}/` })}\n`));
process.once('SIGTERM', () => {
  stats.close();
  void controller.stop().finally(() => process.exit(0));
});
