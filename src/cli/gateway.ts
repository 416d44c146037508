import { parseArgs } from 'node:util';
import { startGateway } from '../gateway/gateway.js';
import { createLogger, type Level } from '../log.js';
import { integerArg, levelArg } from './args.js';

export const GATEWAY_USAGE = 'llmroute gateway --config FILE [--port N] [--metrics-port N] [--max-body-bytes N] [--drain-seconds N] [--log-level info] [--log-prompts]';

const integer = (name: string, value: string | undefined, min: number, max: number): number | undefined => (value === undefined ? undefined : integerArg(name, value, min, max));

/** Waits for SIGTERM or SIGINT, then drains. */
export function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}

/** `llmroute gateway`: what the Deployment runs, serving a compiled config with keys from mounted files. */
export async function gatewayCommand(args: string[], err: NodeJS.WritableStream): Promise<number> {
  let values;
  let options;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        config: { type: 'string' },
        port: { type: 'string' },
        'metrics-port': { type: 'string' },
        'max-body-bytes': { type: 'string' },
        'drain-seconds': { type: 'string', default: '60' },
        'log-level': { type: 'string', default: 'info' },
        'log-prompts': { type: 'boolean', default: false },
      },
    }));
    if (!values.config) throw new Error('--config FILE is required (the compiled gateway config, e.g. /etc/llmroute/gateway.json)');
    levelArg(values['log-level']);
    options = {
      port: integer('port', values.port, 0, 65535),
      metricsPort: integer('metrics-port', values['metrics-port'], 0, 65535),
      maxBodyBytes: integer('max-body-bytes', values['max-body-bytes'], 1024, 1024 ** 3),
      drainMs: (integer('drain-seconds', values['drain-seconds'], 0, 3600) ?? 60) * 1000,
    };
  } catch (error) {
    err.write(`llmroute gateway: ${(error as Error).message}\nusage: ${GATEWAY_USAGE}\n`);
    return 2;
  }
  const log = createLogger({ level: values['log-level'] as Level, base: { component: 'gateway' } });
  try {
    const gateway = await startGateway({
      configPath: values.config,
      log,
      ...(options.port !== undefined ? { port: options.port } : {}),
      ...(options.metricsPort !== undefined ? { metricsPort: options.metricsPort } : {}),
      ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
      logPrompts: values['log-prompts'],
    });
    const signal = await untilSignal();
    log('info', 'draining', { signal, graceSeconds: options.drainMs / 1000 });
    await gateway.stop(options.drainMs);
    return 0;
  } catch (error) {
    err.write(`llmroute gateway: ${(error as Error).message}\n`);
    return 1;
  }
}
