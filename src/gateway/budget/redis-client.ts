/**
 * A Redis client for the budget ledger that fails fast instead of waiting: admission must not stall while Redis is
 * gone, and the resilient ledger falls back to its local share on the first failed command.
 */
import { Redis, type RedisOptions } from 'ioredis';

export const BUDGET_REDIS_OPTIONS: RedisOptions = {
  // Commands sent while disconnected fail at once rather than queueing for a reconnect.
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  // A command in flight when the connection broke is rejected, never sent again behind the ledger's back: spend
  // must reach Redis in order (see RECORD in redis-scripts.ts), and the ledger replays what was not confirmed.
  autoResendUnfulfilledCommands: false,
  commandTimeout: 1000,
  connectTimeout: 2000,
  // Keep trying to reconnect, at most every two seconds.
  retryStrategy: (times) => Math.min(100 * times, 2000),
};

/**
 * Connects to `url` (`redis://` or `rediss://`). Connection errors are reported to `onError` (by default dropped:
 * the ledger's failed commands already say Redis is out of reach, and ioredis would print every reconnect attempt).
 */
export function connectBudgetRedis(url: string, options: RedisOptions = {}, onError: (error: Error) => void = () => undefined): Redis {
  const redis = new Redis(url, { ...BUDGET_REDIS_OPTIONS, ...options });
  redis.on('error', onError);
  return redis;
}
