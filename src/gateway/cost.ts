/**
 * Cost in USD from token counts and a price, and the rule for what a failed attempt cost.
 *
 * Admission reserves the worst case (the whole prompt and every output token the request may produce) and settles
 * to the real cost, so a budget holds even while the answer is still being written. Every attempt the provider
 * charged for is settled, including failed ones: the money is gone whether or not the client got an answer. A
 * charged attempt that did not produce the answer is waste, counted apart so a retry storm shows up as cost.
 */
import type { AttemptResult } from './attempt.js';
import type { Price } from './prices.js';
import type { Usage } from './types.js';

const PER_MILLION = 1_000_000;

export function costUSD(usage: Pick<Usage, 'prompt_tokens' | 'completion_tokens'>, price: Price): number {
  return (usage.prompt_tokens * price.input + usage.completion_tokens * price.output) / PER_MILLION;
}

/** What admission reserves: the prompt (an estimate) plus the most output the request may produce. */
export function worstCaseUSD(promptTokens: number, maxOutputTokens: number, price: Price): number {
  return costUSD({ prompt_tokens: promptTokens, completion_tokens: maxOutputTokens }, price);
}

/** The gateway's own counts for an attempt, used when the provider reported no usage. */
export interface TokenEstimate {
  /** The prompt as the gateway counted it for the model's primary step (`countPromptTokens`). */
  promptTokens: number;
  /** Output tokens received before the attempt ended (e.g. characters streamed / 4). */
  outputTokens: number;
}

export interface Charge {
  usage: Pick<Usage, 'prompt_tokens' | 'completion_tokens'>;
  /** `reported`: the provider's own usage. `estimated`: the gateway's counts. */
  basis: 'reported' | 'estimated';
  /** Charged without producing the answer the client got: a failed attempt or one the client walked away from. */
  wasted: boolean;
}

/**
 * Whether, and for how many tokens, the provider charged for an attempt. Providers bill the tokens they processed
 * in a request they accepted, not the requests they refused; the rule follows the evidence the attempt left:
 *
 * - usage the provider reported (a finished answer, or a stream that sent usage before failing): exactly that;
 * - output received (a stream cut, stalled or ended by an error event after tokens arrived; a client that left
 *   mid-answer): the prompt and the output received, estimated;
 * - a time-out before the first token, with no error status: the provider accepted the request and was working on
 *   it, so the prompt is counted. It may not have been billed; counting it errs toward holding the budget;
 * - an error status (429, 5xx, 4xx), a connection that failed before any answer, or a client that left before any
 *   output (the request may not even have been sent): not charged.
 */
export function attemptCharge(result: AttemptResult, estimate: TokenEstimate): Charge | undefined {
  const wasted = result.kind !== 'complete';
  if (result.kind !== 'client-gone' && result.usage) return { usage: result.usage, basis: 'reported', wasted };
  const received = { prompt_tokens: estimate.promptTokens, completion_tokens: estimate.outputTokens };
  switch (result.kind) {
    case 'complete':
      return { usage: received, basis: 'estimated', wasted };
    case 'client-gone':
      // The attempt result does not say whether output arrived; the gateway's own count does.
      return estimate.outputTokens > 0 ? { usage: received, basis: 'estimated', wasted } : undefined;
    case 'failed':
      if (result.producedOutput) return { usage: received, basis: 'estimated', wasted };
      if (result.error.class === 'timeout' && result.error.status === undefined) {
        return { usage: { prompt_tokens: estimate.promptTokens, completion_tokens: 0 }, basis: 'estimated', wasted };
      }
      return undefined;
  }
}
