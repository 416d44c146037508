/**
 * The llmroute gateway as the benchmark runs it: `startGateway` in its own process, exactly as `llmroute gateway`
 * serves a compiled config (production logger at `info`, one JSON line per request on stderr).
 *
 * Usage: llmroute.ts <config.json>. Prints `{"url": …, "metricsUrl": …}` on stdout once serving; drains and exits on
 * SIGTERM (so that `--cpu-prof` writes its profile).
 */
import { startGateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/log.js';

const configPath = process.argv[2];
if (!configPath) throw new Error('usage: llmroute.ts <config.json>');
const log = createLogger({ level: 'info', base: { component: 'gateway' } });
const gateway = await startGateway({ configPath, host: '127.0.0.1', port: 0, metricsPort: 0, log, reloadIntervalMs: 2000 });
process.stdout.write(`${JSON.stringify({ url: gateway.url, metricsUrl: gateway.metricsUrl })}\n`);
process.once('SIGTERM', () => {
  void gateway.stop(1000).finally(() => process.exit(0));
});
