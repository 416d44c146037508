/**
 * Budgets at admission. Before a request goes upstream, the worst case it could cost (the prompt plus every output
 * token it may produce, at the most expensive price in its fallback chain) is reserved against the environment's
 * budget and the client's; afterwards the reservation settles to what the providers actually charged. Concurrent
 * requests therefore cannot overshoot what they reserved. With `gateway.redis` the ledger is shared by every
 * replica and survives restarts (see budget/resilient-ledger.ts for what happens while Redis is unreachable).
 *
 * An exhausted budget with `onExhausted: reject` answers 429 `budget_exceeded`, saying which budget and when it
 * resets; with `degrade` the request is served by the route's cheaper `degradeTo` model instead, outside the budget.
 */
import { randomUUID } from 'node:crypto';
import type { CompiledModel, GatewayConfig } from '../api/gateway-config.js';
import type { Budget } from '../api/schema.js';
import type { BudgetScope, Exceeded, Ledger, ThresholdCrossing } from './budget/ledger.js';
import { HttpError } from './http-error.js';
import { worstCaseUSD } from './cost.js';
import { priceOf } from './prices.js';

export type Admission =
  | { ok: true; settle(actualUSD: number): Promise<void> }
  | { ok: false; error: HttpError; exceeded: Exceeded }
  | { ok: false; degradeTo: CompiledModel; exceeded: Exceeded };

export interface AdmitRequest {
  client: string;
  model: CompiledModel;
  promptTokens: number;
  maxOutputTokens: number;
  now: Date;
}

export interface BudgetGate {
  admit(request: AdmitRequest): Promise<Admission>;
  close(): Promise<void>;
}

const NO_SETTLEMENT = async () => undefined;
/** How long an unsettled reservation may hold budget after its request's time limit: a crashed replica's hold ends. */
const HOLD_MARGIN_MS = 60_000;

function scopesOf(config: GatewayConfig, client: string): BudgetScope[] {
  const scopes: BudgetScope[] = [];
  if (config.budget) scopes.push({ id: 'environment', budget: config.budget as Budget });
  const clientBudget = config.clients.find((c) => c.name === client)?.budget;
  if (clientBudget) scopes.push({ id: `client:${client}`, budget: clientBudget as Budget });
  return scopes;
}

/** The most a request may cost: priced at the dearest model of the chain it may be served by. */
export function worstCase(config: GatewayConfig, model: CompiledModel, promptTokens: number, maxOutputTokens: number): number {
  const costs = model.fallback.map((step) => priceOf(step.model, config.prices)).flatMap((lookup) => (lookup ? [worstCaseUSD(promptTokens, maxOutputTokens, lookup.price)] : []));
  return costs.length ? Math.max(...costs) : 0;
}

/** Dollars and cents, or as many decimals as the amount needs (up to micro-dollars): a $0.005 budget is not "$0.01". */
function dollars(usd: number): string {
  const cents = usd.toFixed(2);
  return Math.abs(Number(cents) - usd) < 1e-9 ? cents : String(Number(usd.toFixed(6)));
}

export function exhaustedMessage(exceeded: Exceeded): string {
  const whose = exceeded.scope === 'environment' ? 'the environment\'s' : `client "${exceeded.scope.slice('client:'.length)}"'s`;
  return `budget exceeded: ${whose} ${exceeded.window} budget of $${dollars(exceeded.limitUSD)} is spent ($${dollars(exceeded.spentUSD)} used, $${dollars(exceeded.reservedUSD)} reserved by requests in flight); it resets at ${new Date(exceeded.resetsAt).toISOString()}`;
}

export class LedgerGate implements BudgetGate {
  constructor(
    private readonly config: () => GatewayConfig,
    private readonly ledger: Ledger,
    /** Releases what the ledger holds (timers, the Redis connection). */
    private readonly release: () => Promise<void> = async () => undefined,
  ) {}

  async admit(request: AdmitRequest): Promise<Admission> {
    const config = this.config();
    const scopes = scopesOf(config, request.client);
    if (scopes.length === 0) return { ok: true, settle: NO_SETTLEMENT };
    const amount = worstCase(config, request.model, request.promptTokens, request.maxOutputTokens);
    const now = request.now.getTime();
    const reserved = await this.ledger.reserve(scopes, amount, now, request.model.timeouts.totalSeconds * 1000 + HOLD_MARGIN_MS);
    if (reserved.ok) return { ok: true, settle: (actualUSD) => this.ledger.settle(reserved.reservation, actualUSD, Date.now()) };
    const { exceeded } = reserved;
    if (exceeded.onExhausted === 'degrade' && exceeded.degradeTo) {
      const cheaper = config.models.find((m) => m.name === exceeded.degradeTo);
      if (cheaper && cheaper.name !== request.model.name) return { ok: false, degradeTo: cheaper, exceeded };
    }
    const retryAfter = String(Math.max(1, Math.ceil((exceeded.resetsAt - now) / 1000)));
    // `x-should-retry: false`: the OpenAI SDKs retry a 429 on their own, and the Node SDK sleeps for the whole
    // Retry-After first, hours until a daily budget resets, with the caller waiting on it.
    return { ok: false, exceeded, error: new HttpError(429, exhaustedMessage(exceeded), 'insufficient_quota', 'budget_exceeded', null, { 'retry-after': retryAfter, 'x-should-retry': 'false' }) };
  }

  close(): Promise<void> {
    return this.release();
  }
}

/** A replica id for shared ledgers: spend sequence numbers are per process. */
export const replicaId = () => `${process.env.HOSTNAME ?? 'gateway'}-${randomUUID().slice(0, 8)}`;

export type { ThresholdCrossing };
