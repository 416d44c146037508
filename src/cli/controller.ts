import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { durationToMilliseconds, DURATION } from '../api/patterns.js';
import { DEFAULT_WORKERS, startController } from '../controller/controller.js';
import { assertConfigured } from '../controller/kube-client.js';
import { createLogger, type Level } from '../log.js';
import { integerArg, levelArg, portArg } from './args.js';

export const CONTROLLER_USAGE = `llmroute controller [--kubeconfig FILE] [--namespaces ns1,ns2] [--leader-elect=true|false]
                    [--leader-election-namespace NS] [--metrics-port 8080] [--health-port 8081]
                    [--prometheus-url URL] [--gateway-image IMAGE] [--resync 5m] [--workers ${DEFAULT_WORKERS}] [--log-level info]`;

const bool = (name: string, value: string) => {
  if (value === 'true' || value === '') return true;
  if (value === 'false') return false;
  throw new Error(`--${name} takes true or false, not "${value}"`);
};

/** `llmroute controller`: runs until SIGTERM or SIGINT, then stops reconciling, hands over the lease and exits. */
export async function controllerCommand(args: string[], err: NodeJS.WritableStream): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        kubeconfig: { type: 'string' },
        namespaces: { type: 'string', default: '' },
        'leader-elect': { type: 'string', default: 'true' },
        'leader-election-namespace': { type: 'string' },
        'metrics-port': { type: 'string', default: '8080' },
        'health-port': { type: 'string', default: '8081' },
        'prometheus-url': { type: 'string' },
        'gateway-image': { type: 'string' },
        resync: { type: 'string', default: '5m' },
        workers: { type: 'string', default: String(DEFAULT_WORKERS) },
        'log-level': { type: 'string', default: 'info' },
      },
    }));
    if (!new RegExp(DURATION).test(values.resync)) throw new Error(`--resync takes a duration such as 5m, not "${values.resync}"`);
    levelArg(values['log-level']);
    integerArg('workers', values.workers, 1, 99);
    portArg('metrics-port', values['metrics-port']);
    portArg('health-port', values['health-port']);
  } catch (error) {
    err.write(`llmroute controller: ${(error as Error).message}\nusage: ${CONTROLLER_USAGE}\n`);
    return 2;
  }
  const log = createLogger({ level: values['log-level'] as Level, base: { component: 'controller' } });
  const kc = new k8s.KubeConfig();
  try {
    if (values.kubeconfig) kc.loadFromFile(values.kubeconfig);
    else kc.loadFromDefault();
    assertConfigured(kc);
    const leaderElect = bool('leader-elect', values['leader-elect']);
    const leaseNamespace = values['leader-election-namespace'] ?? process.env.POD_NAMESPACE ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
    const controller = await startController({
      kc,
      namespaces: values.namespaces.split(',').map((n) => n.trim()).filter(Boolean),
      workers: Number(values.workers),
      resyncMs: durationToMilliseconds(values.resync),
      ...(values['gateway-image'] ? { gatewayImage: values['gateway-image'] } : {}),
      ...(values['prometheus-url'] ? { prometheusUrl: values['prometheus-url'] } : {}),
      ...(leaderElect ? { leaderElection: { namespace: leaseNamespace, name: 'llmroute-controller', ...(process.env.POD_NAME ? { identity: process.env.POD_NAME } : {}) } } : {}),
      metricsPort: portArg('metrics-port', values['metrics-port']),
      healthPort: portArg('health-port', values['health-port']),
      log,
    });
    log('info', 'controller started', { namespaces: values.namespaces || 'all', leaderElect });
    await new Promise<void>((resolve) => {
      const shutdown = (signal: string) => {
        log('info', 'shutting down', { signal });
        resolve();
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
    });
    await controller.stop();
    log('info', 'stopped');
    return 0;
  } catch (error) {
    err.write(`llmroute controller: ${(error as Error).message}\n`);
    return 1;
  }
}
