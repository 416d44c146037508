/**
 * What an environment has spent in the current UTC day and month, for its status, and whether a hard budget is
 * exhausted. The gateway enforces budgets itself (reserving before each request); this is the view from outside,
 * from the cost counter, so people can see where a budget stands without reading Redis.
 *
 * The month is read with increase() over up to 31 days: Prometheus must retain that much (its default is 15 days),
 * or monthly spend comes out low.
 */
import { METRIC } from '../api/metric-names.js';
import type { Budget, Condition } from '../api/schema.js';
import type { PrometheusClient } from './prometheus.js';

export interface SpendTarget {
  route: string;
  /** The scrape's `namespace` label, so routes of the same name in other namespaces do not count. */
  namespace?: string;
  environment: string;
}

/** The shape of EnvironmentStatus.spend. */
export interface Spend {
  dailyUSD: number;
  monthlyUSD: number;
}

export type BudgetCondition = Pick<Condition, 'type' | 'status' | 'reason' | 'message'>;

export function utcDayStart(now: Date): Date {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
}

export function utcMonthStart(now: Date): Date {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
}

/** The queries to evaluate at `now`: the cost counter's increase since the start of the UTC day and month. */
export function spendQueries(target: SpendTarget, now: Date): { daily: string; monthly: string } {
  const selector = [
    `route=${JSON.stringify(target.route)}`,
    ...(target.namespace === undefined ? [] : [`namespace=${JSON.stringify(target.namespace)}`]),
    `environment=${JSON.stringify(target.environment)}`,
  ].join(',');
  // A range must be positive; at the stroke of midnight one second of nothing is the right answer.
  const since = (start: Date) => Math.max(1, Math.ceil((now.getTime() - start.getTime()) / 1000));
  const query = (start: Date) => `sum(increase(${METRIC.cost}{${selector}}[${since(start)}s]))`;
  return { daily: query(utcDayStart(now)), monthly: query(utcMonthStart(now)) };
}

/** Runs the spend queries at `now`. No cost series means nothing was spent: the counter appears with the first dollar. */
export async function measureSpend(client: PrometheusClient, target: SpendTarget, now: Date): Promise<Spend> {
  const queries = spendQueries(target, now);
  const [daily, monthly] = await Promise.all([client.query(queries.daily, now), client.query(queries.monthly, now)]);
  return { dailyUSD: daily[0]?.value ?? 0, monthlyUSD: monthly[0]?.value ?? 0 };
}

/**
 * The environment's BudgetExceeded condition: True while a `reject` budget is spent, because then the gateway is
 * refusing requests. A spent `degrade` budget is False (requests are still answered) but says so. `spend` is
 * undefined when it could not be measured.
 */
export function budgetCondition(spend: Spend | undefined, budget: Budget | undefined, now: Date): BudgetCondition {
  const condition = (status: BudgetCondition['status'], reason: string, message: string): BudgetCondition => ({ type: 'BudgetExceeded', status, reason, message });
  if (!budget || (budget.daily === undefined && budget.monthly === undefined)) return condition('False', 'NoBudget', 'the environment has no daily or monthly budget');
  if (!spend) return condition('Unknown', 'SpendUnknown', 'spend could not be read from Prometheus');

  const periods = [
    { name: 'daily', limit: budget.daily, spent: spend.dailyUSD, resets: nextUtcDay(now) },
    { name: 'monthly', limit: budget.monthly, spent: spend.monthlyUSD, resets: nextUtcMonth(now) },
  ].filter((period): period is typeof period & { limit: number } => period.limit !== undefined);
  const describe = (period: (typeof periods)[number]) =>
    `${period.name} budget: ${usd(period.spent)} of ${usd(period.limit)} spent, resets at ${toRfc3339(period.resets)}`;
  const exhausted = periods.filter((period) => period.spent >= period.limit);

  if (exhausted.length === 0) return condition('False', 'WithinBudget', periods.map(describe).join('; '));
  // Requests resume only when every exhausted budget has reset: the latest reset is the one to wait for.
  const until = toRfc3339(new Date(Math.max(...exhausted.map((period) => period.resets.getTime()))));
  const details = exhausted.map(describe).join('; ');
  if (budget.onExhausted === 'reject') {
    return condition('True', 'BudgetExhausted', `${details}; requests are rejected until ${until}`);
  }
  return condition('False', 'DegradedToCheaperModel', `${details}; requests are served by ${budget.degradeTo ?? 'the cheaper model'} until ${until}`);
}

function nextUtcDay(now: Date): Date {
  return new Date(utcDayStart(now).getTime() + 86_400_000);
}

function nextUtcMonth(now: Date): Date {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
}

const usd = (value: number) => `$${value.toFixed(2)}`;

function toRfc3339(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
