import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { findExecutable } from './executable.js';

/**
 * A real Prometheus for tests: the Debian package's binary on a free loopback port, with a throwaway config and
 * TSDB directory, scraping the given targets every second. Missing Prometheus is a failure, not a skip: CI installs
 * it, and a test that silently does not run proves nothing.
 */
export interface PrometheusServer {
  url: string;
  /** What Prometheus logged, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

export interface ScrapeTarget {
  /** `host:port` serving /metrics. */
  address: string;
  /** Target labels, as service discovery would add them (e.g. `namespace`; a `job` here replaces the job name). */
  labels?: Record<string, string>;
}

const INSTALL_HINT = 'prometheus is not installed: run `apt-get install -y prometheus` (Debian/Ubuntu; CI installs it), which provides /usr/bin/prometheus';
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5000;

export function findPrometheus(): string {
  return findExecutable('prometheus', '/usr/bin/prometheus', INSTALL_HINT);
}

export interface PrometheusOptions {
  /** Rule groups (`{ groups: [...] }` as a rule file holds them), written to a rule file Prometheus loads. */
  rules?: { groups: unknown[] };
}

export async function startPrometheus(targets: ScrapeTarget[], options: PrometheusOptions = {}): Promise<PrometheusServer> {
  const binary = findPrometheus();
  const dir = mkdtempSync(join(tmpdir(), 'llmroute-prometheus-'));
  const config = join(dir, 'prometheus.yml');
  const ruleFile = join(dir, 'rules.yml');
  if (options.rules) writeFileSync(ruleFile, JSON.stringify(options.rules));
  // JSON is YAML; no YAML writer needed for a config this small.
  writeFileSync(
    config,
    JSON.stringify({
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      ...(options.rules ? { rule_files: [ruleFile] } : {}),
      scrape_configs: [{ job_name: 'gateway', static_configs: targets.map(({ address, labels }) => ({ targets: [address], labels: labels ?? {} })) }],
    }),
  );

  let output = '';
  let child: ChildProcess | undefined;
  // The free port is found by binding and releasing it; if something takes it in between, try another.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    output = '';
    child = spawn(binary, [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const append = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    const url = `http://127.0.0.1:${port}`;
    const ready = await waitForReady(url, child);
    if (ready === 'ready') return handle(url, child, dir, () => output);
    await stopChild(child);
    if (!output.includes('address already in use') || attempt === 3) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`prometheus did not become ready (${ready}); its log:\n${output}`);
    }
  }
}

function handle(url: string, child: ChildProcess, dir: string, logs: () => string): PrometheusServer {
  // If the test process ends without stop() (a crash, a killed worker), do not leave Prometheus running.
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  return {
    url,
    logs,
    async stop() {
      process.off('exit', kill);
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForReady(url: string, child: ChildProcess): Promise<string> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return `it exited with ${child.exitCode ?? child.signalCode}`;
    try {
      if ((await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) })).ok) return 'ready';
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return `not ready after ${READY_TIMEOUT_MS} ms`;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

