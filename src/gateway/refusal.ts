/**
 * Requests the gateway answers with an error before any provider is asked: a refusal. Each gets a reason from a
 * fixed set, so the reason can label a metric without letting a caller mint new series.
 */
import type { HttpError } from './http-error.js';

export const REFUSAL_REASONS = [
  'unauthenticated',
  'unknown_url',
  'method_not_allowed',
  'unknown_model',
  'body_too_large',
  'invalid_request',
  'over_max_input_tokens',
  'over_max_output_tokens',
  'client_rate_limited',
  'not_ready',
  'other',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

const BY_CODE: Record<string, RefusalReason> = {
  invalid_api_key: 'unauthenticated',
  unknown_url: 'unknown_url',
  method_not_allowed: 'method_not_allowed',
  model_not_found: 'unknown_model',
  request_too_large: 'body_too_large',
  // Before routing, a prompt over the cap can only be the gateway's own maxInputTokens check.
  context_length_exceeded: 'over_max_input_tokens',
  max_tokens_exceeded: 'over_max_output_tokens',
  rate_limit_exceeded: 'client_rate_limited',
  gateway_not_ready: 'not_ready',
};

export function refusalReason(error: Pick<HttpError, 'status' | 'code'>): RefusalReason {
  const byCode = error.code ? BY_CODE[error.code] : undefined;
  if (byCode) return byCode;
  if (error.status === 400) return 'invalid_request';
  return 'other';
}
