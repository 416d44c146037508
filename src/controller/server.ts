/** Health and metrics endpoints of the controller: `/healthz`, `/readyz` (caches synced) and `/metrics`. */
import http from 'node:http';
import type { Registry } from 'prom-client';

export interface HealthState {
  live(): boolean;
  ready(): boolean;
}

export function startServer(port: number, health: HealthState, registry: Registry): Promise<http.Server> {
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/healthz' || path === '/livez') {
      response.writeHead(health.live() ? 200 : 500).end(health.live() ? 'ok\n' : 'not live\n');
    } else if (path === '/readyz') {
      response.writeHead(health.ready() ? 200 : 503).end(health.ready() ? 'ok\n' : 'caches not synced\n');
    } else if (path === '/metrics') {
      registry
        .metrics()
        .then((text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text))
        .catch((error: unknown) => response.writeHead(500).end(String(error)));
    } else {
      response.writeHead(404).end('not found\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => resolve(server));
  });
}
