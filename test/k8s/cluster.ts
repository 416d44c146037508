/**
 * Helpers for `*.k8s.test.ts` files: the control plane that test/k8s/global-setup.ts started for this run, reached
 * through the environment variables it set. Tests share one cluster and isolate themselves by namespace
 * (`createNamespace`); the cluster is thrown away after the run, so there is no need to clean up.
 */
import * as k8s from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { apiServerSettled, mintKubeconfig, readState, restartApiServerFrom, type ControlPlaneState, type RestartOptions } from './harness.js';

export type { RestartOptions };

function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run this test through the k8s jest project (NODE_OPTIONS=--experimental-vm-modules npx jest --selectProjects k8s), whose globalSetup starts the control plane`);
  }
  return value;
}

/** The admin kubeconfig (user `admin`, group `system:masters`). */
export const kubeconfigPath = (): string => env('LLMROUTE_TEST_KUBECONFIG');
/** Directory with kubectl and helm. */
export const toolsDir = (): string => env('LLMROUTE_TEST_TOOLS');
const statePath = (): string => env('LLMROUTE_TEST_STATE');
export const state = (): ControlPlaneState => readState(statePath());

/** A loaded KubeConfig: the admin one, or the one at `path` (e.g. from `kubeconfigFor`). */
export function kubeConfig(path: string = kubeconfigPath()): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(path);
  const server = kc.getCurrentCluster()?.server;
  if (!server?.startsWith('https://127.0.0.1:')) throw new Error(`${path} does not point at the test control plane (server ${server ?? 'unset'})`);
  return kc;
}

/** A kubeconfig for a client certificate with this user name and groups, signed by the test CA; returns its path. */
export function kubeconfigFor(user: string, groups: string[] = []): Promise<string> {
  return mintKubeconfig(state(), user, groups);
}

/**
 * Stops the API server and starts it again on the same port with the same flags (from any worker); resolves once it
 * is ready again. Other test files running in parallel see the outage too; `kubectl()` here waits it out.
 */
export function restartApiServer(options?: RestartOptions): Promise<void> {
  return restartApiServerFrom(statePath(), options);
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  input?: string;
  /** Default: the admin kubeconfig. */
  kubeconfig?: string;
  timeoutMs?: number;
  /** Do not wait out (and retry across) an API server restart in progress. */
  duringRestart?: boolean;
}

function exec(command: string, args: string[], extraEnv: Record<string, string>, options: CommandOptions): Promise<CommandResult> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { env: { ...process.env, ...extraEnv }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${options.timeoutMs ?? 60_000} ms)`;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 60_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (error) => {
      clearTimeout(timer);
      fail(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.on('error', () => undefined); // EPIPE when the command exits without reading its input
    child.stdin.end(options.input);
  });
}

/** What kubectl and helm print when the API server went away under them (as opposed to an answer from it). */
const CONNECTION_ERROR = /was refused|connection refused|connection reset|unexpected EOF|\bEOF\b|GOAWAY|http2: client connection lost|unable to connect/i;

/**
 * Runs a command against the cluster. If a restart of the API server (by another test file) overlapped the command
 * and it failed to talk to the server, runs it once more after the restart: those tests own the outage, not this one.
 */
async function againstCluster(run: () => Promise<CommandResult>, options: CommandOptions): Promise<CommandResult> {
  if (options.duringRestart) return run();
  await apiServerSettled(statePath());
  const restarts = state().apiServerRestarts;
  const result = await run();
  if (result.code !== 0 && CONNECTION_ERROR.test(result.stderr)) {
    await apiServerSettled(statePath());
    if (state().apiServerRestarts !== restarts) return run();
  }
  return result;
}

/** kubectl with the test kubeconfig (and its own discovery cache per worker). Never throws for a non-zero exit. */
export function kubectl(args: string[], options: CommandOptions = {}): Promise<CommandResult> {
  const kubeconfig = options.kubeconfig ?? kubeconfigPath();
  const cache = join(state().dir, 'kubectl-cache', String(process.pid));
  return againstCluster(() => exec(join(toolsDir(), 'kubectl'), ['--kubeconfig', kubeconfig, ...args], { KUBECACHEDIR: cache }, options), options);
}

/** helm with the test kubeconfig and its own cache/config/data directories. Never throws for a non-zero exit. */
export function helm(args: string[], options: CommandOptions = {}): Promise<CommandResult> {
  const home = join(state().dir, 'helm');
  const env = {
    KUBECONFIG: options.kubeconfig ?? kubeconfigPath(),
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  };
  return againstCluster(() => exec(join(toolsDir(), 'helm'), args, env, options), options);
}

/** `kubectl`, failing the test with its output unless it exits 0; returns stdout. */
export async function kubectlOk(args: string[], options: CommandOptions = {}): Promise<string> {
  const result = await kubectl(args, options);
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${result.code}:\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

const isConflict = (error: unknown) => error instanceof k8s.ApiException && error.code === 409;

/** Creates a namespace with a unique name starting with `prefix` (a DNS label fragment) and returns the name. */
export async function createNamespace(prefix: string): Promise<string> {
  const stem = prefix.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 50) || 'test';
  const api = kubeConfig().makeApiClient(k8s.CoreV1Api);
  for (;;) {
    const name = `${stem}-${randomBytes(3).toString('hex')}`;
    try {
      await api.createNamespace({ body: { metadata: { name, labels: { 'llmroute.dev/test': stem } } } });
      return name;
    } catch (error) {
      if (!isConflict(error)) throw error;
    }
  }
}

/** Creates a namespace with exactly this name unless it exists (for manifests that name their namespace). */
export async function ensureNamespace(name: string): Promise<string> {
  const api = kubeConfig().makeApiClient(k8s.CoreV1Api);
  try {
    await api.createNamespace({ body: { metadata: { name } } });
  } catch (error) {
    if (!isConflict(error)) throw error;
  }
  return name;
}

export { waitFor, type WaitOptions } from '../support/poll.js';

/** The same credentials, another server address (a proxy in front of the API server, say). */
export function withServer(kc: k8s.KubeConfig, server: string): k8s.KubeConfig {
  const copy = new k8s.KubeConfig();
  copy.loadFromOptions({ clusters: kc.clusters.map((cluster) => ({ ...cluster, server })), users: kc.users, contexts: kc.contexts, currentContext: kc.currentContext });
  return copy;
}

/** Polls a synchronous check (state kept by the test itself) every `intervalMs` until it gives a value. */
export async function pollUntil<T>(what: string, check: () => T | undefined | false, timeoutMs = 15_000, intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
