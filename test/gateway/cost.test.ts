import { describe, expect, it } from '@jest/globals';
import type { AttemptResult } from '../../src/gateway/attempt.js';
import { attemptCharge, costUSD, worstCaseUSD } from '../../src/gateway/cost.js';
import type { ErrorClass } from '../../src/gateway/errors.js';

const gpt4o = { input: 2.5, output: 10 };
const estimate = { promptTokens: 1200, outputTokens: 300 };
const reported = { prompt_tokens: 1000, completion_tokens: 500, total_tokens: 1500 };

function failed(errorClass: ErrorClass, more: { status?: number; producedOutput?: boolean; usage?: typeof reported } = {}): AttemptResult {
  const { status, producedOutput = false, usage } = more;
  return {
    kind: 'failed',
    error: { class: errorClass, provider: 'openai', message: 'x', ...(status !== undefined ? { status } : {}) },
    producedOutput,
    durationMs: 10,
    ...(usage ? { usage } : {}),
  };
}

describe('costUSD and worstCaseUSD', () => {
  it('prices input and output tokens per million', () => {
    expect(costUSD(reported, gpt4o)).toBeCloseTo((1000 * 2.5 + 500 * 10) / 1e6, 12);
    expect(costUSD({ prompt_tokens: 1_000_000, completion_tokens: 0 }, gpt4o)).toBe(2.5);
    expect(costUSD({ prompt_tokens: 0, completion_tokens: 1_000_000 }, gpt4o)).toBe(10);
  });

  it('reserves the prompt plus every output token the request may produce', () => {
    expect(worstCaseUSD(1200, 4096, gpt4o)).toBeCloseTo((1200 * 2.5 + 4096 * 10) / 1e6, 12);
    // Output is what dominates: the bound on it is what makes the reservation a bound at all.
    expect(worstCaseUSD(1200, 4096, gpt4o)).toBeGreaterThan(costUSD({ prompt_tokens: 1200, completion_tokens: 4095 }, gpt4o));
  });
});

describe('attemptCharge: what the provider charged for an attempt', () => {
  it('charges a finished answer its reported usage, as no waste', () => {
    expect(attemptCharge({ kind: 'complete', usage: reported, firstTokenMs: 1, durationMs: 2 }, estimate)).toEqual({ usage: reported, basis: 'reported', wasted: false });
  });

  it("charges a finished answer without usage the gateway's estimate", () => {
    expect(attemptCharge({ kind: 'complete', firstTokenMs: 1, durationMs: 2 }, estimate)).toEqual({ usage: { prompt_tokens: 1200, completion_tokens: 300 }, basis: 'estimated', wasted: false });
  });

  it('counts a stream cut after tokens arrived as waste: the prompt and the output received', () => {
    expect(attemptCharge(failed('stream_cut', { producedOutput: true }), estimate)).toEqual({ usage: { prompt_tokens: 1200, completion_tokens: 300 }, basis: 'estimated', wasted: true });
    expect(attemptCharge(failed('stream_stall', { producedOutput: true }), estimate)?.wasted).toBe(true);
    // An error event in the stream (status 529 mid-answer) after output: the output was still produced.
    expect(attemptCharge(failed('overloaded', { status: 529, producedOutput: true }), estimate)?.usage.completion_tokens).toBe(300);
  });

  it("prefers the provider's usage when a failed stream reported it", () => {
    expect(attemptCharge(failed('stream_cut', { producedOutput: true, usage: reported }), estimate)).toEqual({ usage: reported, basis: 'reported', wasted: true });
  });

  it('counts the prompt of an attempt that timed out before its first token', () => {
    expect(attemptCharge(failed('timeout'), estimate)).toEqual({ usage: { prompt_tokens: 1200, completion_tokens: 0 }, basis: 'estimated', wasted: true });
  });

  it('charges nothing for refusals and connections that failed before any answer', () => {
    for (const [errorClass, status] of [
      ['rate_limited', 429],
      ['quota_exhausted', 429],
      ['overloaded', 529],
      ['server_error', 500],
      ['auth_failed', 401],
      ['context_length_exceeded', 400],
      ['timeout', 504],
    ] as const) {
      expect(attemptCharge(failed(errorClass, { status }), estimate)).toBeUndefined();
    }
    expect(attemptCharge(failed('connection_reset'), estimate)).toBeUndefined();
  });

  it('charges a client that left mid-answer for what it received, and nothing if it left before any output', () => {
    expect(attemptCharge({ kind: 'client-gone', durationMs: 5 }, estimate)).toEqual({ usage: { prompt_tokens: 1200, completion_tokens: 300 }, basis: 'estimated', wasted: true });
    expect(attemptCharge({ kind: 'client-gone', durationMs: 5 }, { promptTokens: 1200, outputTokens: 0 })).toBeUndefined();
  });
});
