/**
 * What one client request cost: every attempt the provider charged for, priced by the model it asked for. The
 * answering attempt is the request's cost; charged attempts that did not produce the answer are waste. A model
 * with no known price is a warning and a metric, never a silent zero.
 */
import type { AttemptResult } from './attempt.js';
import { attemptCharge } from './cost.js';
import { costUSD } from './cost.js';
import { priceOf, type Price } from './prices.js';
import type { AttemptRecord } from './router.js';

export interface Charged {
  provider: string;
  model: string;
  usd: number;
  wasted: boolean;
  estimated: boolean;
}

export class RequestAccount {
  readonly charges: Charged[] = [];
  readonly unpriced = new Set<string>();

  constructor(
    private readonly prices: Readonly<Record<string, Price>>,
    private readonly promptTokens: number,
  ) {}

  /** Records an attempt; `outputCharacters` is what it streamed, for providers that report no usage. */
  attempt(record: AttemptRecord, result: AttemptResult | undefined, outputCharacters: number): void {
    if (!result) return;
    const charge = attemptCharge(result, { promptTokens: this.promptTokens, outputTokens: Math.ceil(outputCharacters / 4) });
    if (!charge) return;
    const lookup = priceOf(record.model, this.prices);
    if (!lookup) {
      this.unpriced.add(record.model);
      return;
    }
    this.charges.push({ provider: record.provider, model: record.model, usd: costUSD(charge.usage, lookup.price), wasted: charge.wasted, estimated: charge.basis === 'estimated' });
  }

  totalUSD(): number {
    return this.charges.reduce((sum, c) => sum + c.usd, 0);
  }
}
