/**
 * `llmroute up`: a gateway on this machine for one environment of an LLMRoute, no cluster needed. Keys come from a
 * directory laid out like the mounted Secrets (`<dir>/keys/<provider>/<n>/value`, `<dir>/clients/<client>/value`)
 * or from environment variables (`LLMROUTE_KEY_<PROVIDER>`, `LLMROUTE_KEY_<PROVIDER>_<N>`,
 * `LLMROUTE_CLIENT_TOKEN_<CLIENT>`). Without `-f` it serves the built-in quickstart (mock providers, no keys).
 */
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compileEnvironment, environmentOf } from '../api/compile.js';
import { CONFIG_FILE_NAME, clientMounts, keyMounts } from '../api/mounts.js';
import { needsKey } from '../api/rules.js';
import type { LLMRoute } from '../api/schema.js';
import { startGateway } from '../gateway/gateway.js';
import { createLogger, type Level } from '../log.js';
import { levelArg, portArg } from './args.js';
import { loadRouteEnvironment } from './route-environment.js';
import { untilSignal } from './gateway.js';

export const UP_USAGE = 'llmroute up [-f ROUTE.yaml] [--env NAME] [--port 8080] [--metrics-port 9090] [--keys-dir DIR] [--log-level info]';

const envName = (name: string) => name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
export const keyVariable = (provider: string, index: number) => `LLMROUTE_KEY_${envName(provider)}${index ? `_${index}` : ''}`;
export const clientTokenVariable = (client: string) => `LLMROUTE_CLIENT_TOKEN_${envName(client)}`;

/** The quickstart shipped with the package: found by walking up from this file, from src/ or from build/src/. */
function builtInQuickstart(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'examples', 'quickstart.yaml');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error('the built-in quickstart (examples/quickstart.yaml) is missing from this installation; pass -f ROUTE.yaml');
}

/** Copies keys from environment variables into a private directory laid out like the mounted Secrets. */
async function keysFromEnvironment(route: LLMRoute, environment: string, root: string): Promise<void> {
  const env = environmentOf(route, environment);
  for (const mount of keyMounts(route, env, root)) {
    const value = process.env[keyVariable(mount.provider, mount.index)];
    if (value === undefined) continue;
    await mkdir(mount.directory, { recursive: true, mode: 0o700 });
    await writeFile(mount.file, value, { mode: 0o600 });
  }
  for (const mount of clientMounts(route, root)) {
    const value = process.env[clientTokenVariable(mount.client)];
    if (value === undefined) continue;
    await mkdir(mount.directory, { recursive: true, mode: 0o700 });
    await writeFile(mount.file, value, { mode: 0o600 });
  }
}

function missingKeys(route: LLMRoute, environment: string, root: string, fromDirectory: boolean): string[] {
  const env = environmentOf(route, environment);
  const mounts = keyMounts(route, env, root);
  return route.spec.providers
    .filter((provider) => needsKey(provider) && !mounts.some((m) => m.provider === provider.name && existsSync(m.file)))
    .map((provider) => {
      const where = mounts.filter((m) => m.provider === provider.name).map((m) => (fromDirectory ? m.file : keyVariable(m.provider, m.index)));
      return `provider "${provider.name}" (${provider.type}) in environment "${environment}" has no key: looked for ${where.length ? where.join(', ') : `a key source, but the environment declares none for it`}`;
    });
}

function instructions(url: string, model: string, auth: LLMRoute['spec']['auth']): string {
  const authHeader = auth === 'none' ? '' : ` -H "Authorization: Bearer $LLMROUTE_CLIENT_TOKEN"`;
  const apiKey = auth === 'none' ? "'not-needed'" : 'process.env.LLMROUTE_CLIENT_TOKEN';
  return `
llmroute gateway serving at ${url}/v1

Try it:
  curl -s ${url}/v1/chat/completions -H 'content-type: application/json'${authHeader} \\
    -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello!"}]}'

Or point the OpenAI SDK at it (Node):
  import OpenAI from 'openai';
  const client = new OpenAI({ baseURL: '${url}/v1', apiKey: ${apiKey} });
  const answer = await client.chat.completions.create({ model: '${model}', messages: [{ role: 'user', content: 'Hello!' }] });
  console.log(answer.choices[0].message.content, answer.model);

Response headers x-llmroute-provider, x-llmroute-attempts and x-llmroute-fallback-depth show how each answer was
served. Press Ctrl-C to stop.
`;
}

export async function upCommand(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        file: { type: 'string', short: 'f' },
        env: { type: 'string' },
        port: { type: 'string', default: '8080' },
        'metrics-port': { type: 'string', default: '9090' },
        'keys-dir': { type: 'string' },
        'log-level': { type: 'string', default: 'info' },
      },
    }));
    portArg('port', values.port);
    portArg('metrics-port', values['metrics-port']);
    levelArg(values['log-level']);
  } catch (error) {
    err.write(`llmroute up: ${(error as Error).message}\nusage: ${UP_USAGE}\n`);
    return 2;
  }
  const file = values.file ?? builtInQuickstart();
  const chosen = await loadRouteEnvironment('up', file, values.env, err);
  if (typeof chosen === 'number') return chosen;
  const { route, environment } = chosen;

  const work = await mkdtemp(join(tmpdir(), 'llmroute-up-'));
  await chmod(work, 0o700);
  try {
    const root = values['keys-dir'] ? resolve(values['keys-dir']) : join(work, 'secrets');
    if (!values['keys-dir']) await keysFromEnvironment(route, environment, root);
    const missing = missingKeys(route, environment, root, Boolean(values['keys-dir']));
    if (missing.length) {
      err.write(`llmroute up: cannot serve "${route.metadata.name}" environment "${environment}":\n${missing.map((m) => `  - ${m}`).join('\n')}\n`);
      return 1;
    }
    const configPath = join(work, CONFIG_FILE_NAME);
    await writeFile(configPath, JSON.stringify(compileEnvironment(route, environment, { secretsRoot: root }), null, 2));
    const log = createLogger({ level: values['log-level'] as Level, base: { component: 'gateway' } });
    const gateway = await startGateway({ configPath, host: '127.0.0.1', port: Number(values.port), metricsPort: Number(values['metrics-port']), log });
    out.write(instructions(gateway.url, route.spec.models[0]?.name ?? 'chat', route.spec.auth));
    await untilSignal();
    await gateway.stop(5_000);
    return 0;
  } catch (error) {
    err.write(`llmroute up: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
