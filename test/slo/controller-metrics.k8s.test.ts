/**
 * The metrics contract against a running controller (issue 7: the names, types and labels a scrape of /metrics shows,
 * checked against the Controller table of docs/metrics.md, as test/slo/metrics-contract.test.ts does for a gateway).
 * The controller reconciles one route with a flag rollout on a real API server, with a Prometheus URL that refuses
 * connections: the rollout starts at its first step (no analysis is due yet), so the per-flag series exist.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { stringify } from 'yaml';
import { startController, type RunningController } from '../../src/controller/controller.js';
import { createLogger } from '../../src/log.js';
import { parseExposition, type Family } from '../support/exposition.js';
import { documentedMetrics, documents, type DocumentedMetric } from '../support/promql.js';
import { createNamespace, kubeConfig, kubectlOk, waitFor } from '../k8s/cluster.js';
import { freePorts } from '../support/ports.js';

/** prom-client's default metrics: documented by prefix, their labels are prom-client's. */
const DEFAULT_METRIC = /^llmroute_controller_(process|nodejs)_/;
const FLAG = 'canary';

let namespace: string;
let controller: RunningController;
let metricsPort: number;
let text: string;
let families: Map<string, Family>;
let documented: DocumentedMetric[];

beforeAll(async () => {
  namespace = await createNamespace('ctrl-metrics');
  [metricsPort] = (await freePorts(1)) as [number];
  controller = await startController({
    kc: kubeConfig(),
    namespaces: [namespace],
    workers: 2,
    resyncMs: 30_000,
    prometheusUrl: 'http://127.0.0.1:1',
    metricsPort,
    healthPort: metricsPort,
    log: createLogger({ level: 'warn', write: () => undefined }),
  });
  await kubectlOk(['apply', '--server-side', '--field-manager=test-user', '-f', '-'], {
    input: stringify({
      apiVersion: 'llmroute.dev/v1alpha1',
      kind: 'LLMRoute',
      metadata: { name: 'metered', namespace },
      spec: {
        auth: 'none',
        providers: [{ name: 'mock', type: 'mock' }],
        models: [{ name: 'chat', pin: 'mock-2025-01-01', fallback: [{ provider: 'mock' }] }],
        flags: [{ name: FLAG, set: { models: { chat: { maxOutputTokens: 100 } } }, rollout: { steps: [10, 50, 100], interval: '1h' } }],
        environments: [{ name: 'dev', gateway: { replicas: 1 } }],
      },
    }),
  });
  text = await waitFor(async () => {
    const scraped = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return scraped.includes('llmroute_controller_rollout_step{') ? scraped : undefined;
  }, { message: 'the rollout series' });
  families = parseExposition(text);
  documented = (await documentedMetrics()).filter((d) => d.section === 'Controller');
}, 60_000);

afterAll(async () => {
  await controller?.stop();
});

describe("a running controller's /metrics against docs/metrics.md", () => {
  it('documents every llmroute_ family it exposes, with the type and, on its series, the labels', () => {
    const exposed = [...families.values()].filter((f) => f.name.startsWith('llmroute_'));
    for (const family of exposed) {
      const doc = documented.find((d) => documents(d, family.name));
      expect({ metric: family.name, documented: Boolean(doc) }).toEqual({ metric: family.name, documented: true });
      if (DEFAULT_METRIC.test(family.name)) continue;
      expect({ metric: family.name, type: family.type }).toEqual({ metric: family.name, type: doc!.type });
      expect({ metric: family.name, series: family.series.length > 0 }).toEqual({ metric: family.name, series: true });
      for (const series of family.series) {
        const labels = Object.keys(series).filter((l) => l !== 'le' || family.type !== 'histogram');
        expect({ metric: family.name, labels: labels.sort() }).toEqual({ metric: family.name, labels: [...doc!.labels].sort() });
      }
    }
  });

  it('exposes every controller metric docs/metrics.md lists', () => {
    expect(documented.length).toBeGreaterThanOrEqual(7);
    const missing = documented.filter((d) => ![...families.keys()].some((n) => documents(d, n))).map((d) => d.name);
    expect(missing).toEqual([]);
  });

  it("gives the rollout series the route's namespace, name, environment and flag, at the first step", () => {
    const labels = `{namespace="${namespace}",route="metered",environment="dev",flag="${FLAG}"}`;
    expect(text.split('\n').filter((line) => line.startsWith('llmroute_controller_rollout_'))).toEqual([`llmroute_controller_rollout_percent${labels} 10`, `llmroute_controller_rollout_step${labels} 0`]);
  });
});
