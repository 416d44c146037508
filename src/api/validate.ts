/**
 * Validation of one LLMRoute object, pure: the same function serves `llmroute validate`, `cdk8s synth`, the gateway's
 * config loading and the controller, so every entry point rejects the same things with the same words.
 */
import { API_VERSION, GROUP, KIND } from './group.js';
import { checkRules, type Finding } from './rules.js';
import { LLMRoute } from './schema.js';
import { findingsFromZod } from './zod-findings.js';

export interface Validation {
  /** The route with every default applied; present when there are no errors. */
  route?: LLMRoute;
  findings: Finding[];
}

export const hasErrors = (findings: readonly Finding[]) => findings.some((f) => f.severity === 'error');

/** Whether a parsed document claims to be ours: anything in the llmroute.dev group, or kind LLMRoute. */
export function isLLMRouteDocument(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  const { apiVersion, kind } = value as { apiVersion?: unknown; kind?: unknown };
  return (typeof apiVersion === 'string' && apiVersion.split('/')[0] === GROUP) || (typeof kind === 'string' && kind.toLowerCase() === KIND.toLowerCase());
}

function identityFindings(value: Record<string, unknown>): Finding[] {
  const findings: Finding[] = [];
  if (value.apiVersion !== API_VERSION) {
    findings.push({
      path: ['apiVersion'],
      severity: 'error',
      message: `${JSON.stringify(value.apiVersion)} is not served by this llmroute; use apiVersion: ${API_VERSION}`,
    });
  }
  if (value.kind !== KIND) {
    findings.push({ path: ['kind'], severity: 'error', message: `${JSON.stringify(value.kind)} is not a kind of ${GROUP}; use kind: ${KIND} (kinds are case-sensitive)` });
  }
  return findings;
}

export function validateRoute(value: unknown): Validation {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { findings: [{ path: [], severity: 'error', message: 'an LLMRoute must be a map with apiVersion, kind, metadata and spec' }] };
  }
  const identity = identityFindings(value as Record<string, unknown>);
  if (identity.length) return { findings: identity };
  const parsed = LLMRoute.safeParse(value);
  if (!parsed.success) return { findings: findingsFromZod(parsed.error, value, LLMRoute) };
  const findings = checkRules(parsed.data);
  return hasErrors(findings) ? { findings } : { route: parsed.data, findings };
}
