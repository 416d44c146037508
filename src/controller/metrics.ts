/** The controller's own metrics (docs/metrics.md lists them with the gateway's). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly reconcileDuration = new Histogram({
    name: 'llmroute_controller_reconcile_duration_seconds',
    help: 'Time to reconcile one LLMRoute.',
    labelNames: ['outcome'],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: 'llmroute_controller_reconcile_errors_total',
    help: 'Reconciles that failed and were requeued with backoff.',
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'llmroute_controller_queue_depth',
    help: 'LLMRoutes waiting in the work queue.',
    registers: [this.registry],
  });
  readonly rolloutPercent = new Gauge({
    name: 'llmroute_controller_rollout_percent',
    help: 'Current traffic percentage of each flag, per route environment.',
    labelNames: ['namespace', 'route', 'environment', 'flag'],
    registers: [this.registry],
  });
  readonly rolloutStep = new Gauge({
    name: 'llmroute_controller_rollout_step',
    help: 'Index (from 0) of the current rollout step of each flag with a rollout, per route environment.',
    labelNames: ['namespace', 'route', 'environment', 'flag'],
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: 'llmroute_controller_leader',
    help: '1 while this replica holds the leader lease.',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'llmroute_controller_' });
  }
}
