/**
 * The alert rules rendered into each environment's PrometheusRule. This module is the single place they come from;
 * the observability work (the SLO pack) fills in the full set against the metrics contract in docs/metrics.md.
 * Until then it carries the one alert that needs no gateway metric beyond `up`.
 */
import type { LLMRoute } from '../api/schema.js';

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface RuleGroup {
  name: string;
  rules: AlertRule[];
}

export function alertRuleGroups(route: LLMRoute, environment: string, namespace: string | undefined): RuleGroup[] {
  const selector = [`job="${route.metadata.name}-${environment}"`, ...(namespace ? [`namespace="${namespace}"`] : [])].join(', ');
  return [
    {
      name: `llmroute.${route.metadata.name}.${environment}`,
      rules: [
        {
          alert: 'LLMRouteGatewayDown',
          expr: `sum(up{${selector}}) == 0 or absent(up{${selector}})`,
          for: '5m',
          labels: { severity: 'critical', llmroute_route: route.metadata.name, llmroute_environment: environment },
          annotations: {
            summary: `The llmroute gateway ${route.metadata.name}-${environment} is down`,
            description: 'No gateway pod has been scrapable for 5 minutes: the application cannot reach any LLM provider through it.',
            runbook_url: `${route.spec.alerts.runbookURL}#llmroutegatewaydown`,
          },
        },
      ],
    },
  ];
}
