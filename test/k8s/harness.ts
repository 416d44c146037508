/**
 * A real, throwaway Kubernetes control plane for the `k8s` jest project: etcd, kube-apiserver and
 * kube-controller-manager (so garbage collection, ReplicaSets, namespaces and service accounts are real) on free
 * loopback ports, with openssl-made certificates, client-certificate authentication and RBAC, our CRD and the
 * third-party fixture CRDs installed and Established. The flags follow test/k8s/smoke.sh.
 *
 * Everything lives in one temporary directory: certificates, kubeconfigs, etcd's data, one log file per process and
 * `state.json`, which records each process's pid and command line. The state file is what lets a jest worker (a
 * different process from the one that started the control plane) restart the API server or mint a client identity:
 * see `restartApiServerFrom` and `mintKubeconfig`, used through test/k8s/cluster.ts.
 *
 * This file is loaded two ways: by jest's globalSetup (transpiled to CommonJS, without jest's moduleNameMapper) and
 * by test workers (ESM). So it imports only node builtins and packages, never a relative `./x.js`, never
 * `@kubernetes/client-node` (ESM-only), and does not use `import.meta`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import * as https from 'node:https';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';

export type Component = 'etcd' | 'kube-apiserver' | 'kube-controller-manager';

/** How to start one process again: the same binary, arguments and directory, appending to the same log. */
export interface ProcessRecord {
  pid: number;
  command: string;
  args: string[];
  cwd: string;
  log: string;
}

/** Written to `<dir>/state.json`; readable from any process. */
export interface ControlPlaneState {
  dir: string;
  server: string;
  kubeconfigPath: string;
  binDir: string;
  toolsDir: string;
  caCert: string;
  caKey: string;
  adminCert: string;
  adminKey: string;
  ports: { etcd: number; etcdPeer: number; apiServer: number; controllerManager: number };
  processes: Partial<Record<Component, ProcessRecord>>;
  apiServerRestarts: number;
}

export interface ControlPlaneOptions {
  /** Repository root; defaults to the nearest directory above the working directory holding test/k8s/build.sh. */
  root?: string;
  /** Directory with etcd, kube-apiserver and kube-controller-manager; defaults to what test/k8s/build.sh prints. */
  binDir?: string;
  /** Directory with kubectl and helm; defaults to what test/k8s/tools.sh prints. */
  toolsDir?: string;
  /** CRD manifests (files or directories of *.yaml) to install; defaults to our CRD and test/k8s/fixtures/. */
  crds?: string[];
  /** Start kube-controller-manager (default true). */
  controllerManager?: boolean;
  /** Serve kube-apiserver's /debug/pprof endpoints (default false), for a benchmark that profiles the API server. */
  apiServerProfiling?: boolean;
  /** Keep the temporary directory after stop() (default: LLMROUTE_KEEP_CLUSTER=1). Processes are stopped anyway. */
  keepDir?: boolean;
  /** Progress lines; default stderr. */
  log?: (line: string) => void;
}

/** Milliseconds spent in each startup phase (phases run partly in parallel, so they do not add up to `total`). */
export interface StartupTimings {
  binaries: number;
  certificates: number;
  etcd: number;
  apiServer: number;
  crds: number;
  controllerManager: number;
  total: number;
}

export interface RestartOptions {
  /** How long to leave the API server down before starting it again (default 0). */
  downMs?: number;
  /** SIGTERM (default: graceful shutdown) or SIGKILL (a crash). */
  signal?: 'SIGTERM' | 'SIGKILL';
}

export interface ControlPlane {
  readonly dir: string;
  readonly statePath: string;
  readonly kubeconfigPath: string;
  readonly server: string;
  readonly binDir: string;
  readonly toolsDir: string;
  readonly timings: StartupTimings;
  /** Stops the API server and starts it again on the same port with the same flags; resolves once it is ready. */
  restartApiServer(options?: RestartOptions): Promise<void>;
  /** A kubeconfig for a client certificate with this user name and these groups, signed by the test CA. */
  kubeconfigFor(user: string, groups?: string[]): Promise<string>;
  /** Stops every process (SIGTERM, SIGKILL after a grace period) and removes the directory unless kept. */
  stop(): Promise<void>;
}

const STATE_FILE = 'state.json';
const RESTART_LOCK = 'restart.lock';
const GRACE_MS = 5_000;
const PREFIX = 'test/k8s';

// --- Small utilities -------------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; never throws for a non-zero exit. */
function run(command: string, args: string[], options: { cwd?: string; input?: string; onStderr?: (chunk: string) => void } = {}): Promise<RunResult> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      options.onStderr?.(chunk);
    });
    child.on('error', fail);
    child.on('close', (code, signal) => done({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
    child.stdin.on('error', () => undefined); // EPIPE when the command exits without reading its input
    child.stdin.end(options.input);
  });
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const result = await run('openssl', args, { cwd });
  if (result.code !== 0) throw new Error(`openssl ${args.join(' ')} failed (exit ${result.code}):\n${result.stderr.trim()}`);
}

/** The last lines of a log file, for error messages. */
export function tail(file: string, lines = 30): string {
  try {
    const text = readFileSync(file, 'utf8').trimEnd().split('\n');
    return text.slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Ports nobody listens on right now, all distinct (held open together while they are picked). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      servers.push(server);
      await new Promise<void>((done, fail) => {
        server.once('error', fail);
        server.listen(0, '127.0.0.1', () => done());
      });
      ports.push((server.address() as net.AddressInfo).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((done) => s.close(() => done()))));
  }
}

function findRoot(from: string): string {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'test/k8s/build.sh'))) return dir;
    if (dirname(dir) === dir) throw new Error(`cannot find the llmroute repository (test/k8s/build.sh) above ${from}; pass options.root`);
  }
}

// --- Processes ---------------------------------------------------------------------------------------------------

/** Starts a long-running process with its output appended to its log file. It does not keep node alive. */
function launch(record: Omit<ProcessRecord, 'pid'>): { child: ChildProcess; record: ProcessRecord } {
  const fd = openSync(record.log, 'a');
  try {
    // Same process group as the test run, so a Ctrl-C in the terminal reaches these too.
    const child = spawn(record.command, record.args, { cwd: record.cwd, stdio: ['ignore', fd, fd] });
    if (child.pid === undefined) throw new Error(`cannot start ${record.command}`);
    child.on('error', () => undefined);
    child.unref();
    return { child, record: { ...record, pid: child.pid } };
  } finally {
    closeSync(fd);
  }
}

/** Whether `pid` is a running (not zombie) process started from `command`: guards against pid reuse. */
function isRunning(pid: number, command: string): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] === command;
  } catch {
    return true; // no /proc (not Linux): trust kill(0)
  }
}

/** SIGTERM (or `signal`), then SIGKILL after the grace period; resolves when the process is gone. */
async function terminate(record: ProcessRecord, signal: NodeJS.Signals = 'SIGTERM', graceMs = GRACE_MS): Promise<void> {
  if (!isRunning(record.pid, record.command)) return;
  try {
    process.kill(record.pid, signal);
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isRunning(record.pid, record.command)) {
    if (Date.now() > deadline) {
      try {
        process.kill(record.pid, 'SIGKILL');
      } catch {
        return;
      }
      const hard = Date.now() + 5_000;
      while (isRunning(record.pid, record.command) && Date.now() < hard) await sleep(20);
      return;
    }
    await sleep(20);
  }
}

/** Fails fast if the process dies while we wait for it. */
function exitWatcher(child: ChildProcess | undefined, record: ProcessRecord): () => boolean {
  let exited = false;
  child?.once('exit', () => (exited = true));
  return () => exited || !isRunning(record.pid, record.command);
}

// --- State file ----------------------------------------------------------------------------------------------------

export function readState(statePath: string): ControlPlaneState {
  return JSON.parse(readFileSync(statePath, 'utf8')) as ControlPlaneState;
}

async function writeState(statePath: string, state: ControlPlaneState): Promise<void> {
  const temp = `${statePath}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(state, null, 2)}\n`);
  await rename(temp, statePath);
}

// --- HTTPS to the API server --------------------------------------------------------------------------------------

interface Credentials {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

const credentialsOf = (state: ControlPlaneState): Credentials => ({
  ca: readFileSync(state.caCert),
  cert: readFileSync(state.adminCert),
  key: readFileSync(state.adminKey),
});

/** One request as the admin user; resolves with the status and body, rejects only on connection errors. */
function request(url: string, credentials: Credentials | 'insecure', method = 'GET', body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(
      url,
      {
        method,
        timeout: 10_000,
        agent: false,
        headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
        ...(credentials === 'insecure' ? { rejectUnauthorized: false } : credentials),
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => done({ status: res.statusCode ?? 0, body: text }));
        res.on('error', fail);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', fail);
    req.end(payload);
  });
}

/** Polls until `check` is true; throws, with the tail of `log`, when the process died or time ran out. */
async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean>, died: () => boolean, log: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      if (await check()) return;
    } catch (error) {
      last = (error as Error).message;
    }
    if (died()) throw new StartupError(`${what}: the process exited`, log);
    if (Date.now() > deadline) throw new StartupError(`${what}: not ready after ${seconds(timeoutMs)}${last ? ` (last error: ${last})` : ''}`, log);
    await sleep(100);
  }
}

class StartupError extends Error {
  /** Whether the process failed to bind its port (a race with another process: worth another try). */
  readonly portInUse: boolean;
  constructor(message: string, log: string) {
    super(`${PREFIX}: ${message}\n--- last lines of ${log}:\n${tail(log)}`);
    this.portInUse = /address already in use/i.test(tail(log, 200));
  }
}

async function waitForApiServer(state: ControlPlaneState, died: () => boolean, timeoutMs = 90_000): Promise<void> {
  const credentials = credentialsOf(state);
  await waitUntil('kube-apiserver /readyz', timeoutMs, async () => (await request(`${state.server}/readyz`, credentials)).status === 200, died, state.processes['kube-apiserver']!.log);
}

// --- Certificates and kubeconfigs ---------------------------------------------------------------------------------

const CLIENT_EXT = 'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n';
// ECDSA P-256: key generation takes milliseconds where RSA 2048 takes a quarter of a second per key.
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** `/O=group/.../CN=user`, escaped for `openssl -subj`. */
function subject(user: string, groups: readonly string[]): string {
  const escape = (value: string) => value.replace(/[\\/=+,]/g, (c) => `\\${c}`);
  return [...groups.map((g) => `/O=${escape(g)}`), `/CN=${escape(user)}`].join('');
}

/** Key `<name>.key` and certificate `<name>.crt` in `dir`, signed by the CA. Safe to run concurrently. */
async function signCertificate(dir: string, name: string, subj: string, extensions: string, ca: { cert: string; key: string }): Promise<{ cert: string; key: string }> {
  const base = join(dir, name);
  await writeFile(`${base}.ext`, extensions);
  await openssl(['req', ...NEW_KEY, '-subj', subj, '-keyout', `${base}.key`, '-out', `${base}.csr`], dir);
  const serial = `0x${Buffer.from(Array.from({ length: 16 }, () => Math.floor(Math.random() * 256))).toString('hex')}`;
  await openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', serial, '-days', '7', '-extfile', `${base}.ext`, '-out', `${base}.crt`], dir);
  await Promise.all([rm(`${base}.csr`), rm(`${base}.ext`)]);
  return { cert: `${base}.crt`, key: `${base}.key` };
}

/** A self-contained kubeconfig (certificates embedded), so it can be copied or mounted anywhere. */
async function writeKubeconfig(path: string, server: string, caCert: string, client: { cert: string; key: string }, user: string): Promise<string> {
  const b64 = async (file: string) => (await readFile(file)).toString('base64');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'llmroute-test', cluster: { server, 'certificate-authority-data': await b64(caCert) } }],
    users: [{ name: user, user: { 'client-certificate-data': await b64(client.cert), 'client-key-data': await b64(client.key) } }],
    contexts: [{ name: 'llmroute-test', context: { cluster: 'llmroute-test', user } }],
    'current-context': 'llmroute-test',
  };
  await writeFile(path, stringify(config), { mode: 0o600 });
  return path;
}

/** A kubeconfig for `user` in `groups`; works from any process that can read the state file. */
export async function mintKubeconfig(state: ControlPlaneState, user: string, groups: readonly string[] = []): Promise<string> {
  const dir = join(state.dir, 'clients');
  await mkdir(dir, { recursive: true });
  const name = `${user.replace(/[^A-Za-z0-9.-]+/g, '_').slice(0, 60)}-${process.pid}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const client = await signCertificate(dir, name, subject(user, groups), CLIENT_EXT, { cert: state.caCert, key: state.caKey });
  return writeKubeconfig(join(dir, `${name}.kubeconfig`), state.server, state.caCert, client, user);
}

async function makeCertificates(dir: string): Promise<void> {
  await openssl(
    ['req', '-x509', ...NEW_KEY, '-days', '7', '-subj', '/CN=llmroute-test-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature', '-keyout', 'ca.key', '-out', 'ca.crt'],
    dir,
  );
  const ca = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  const serving = [
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc',
    '',
  ].join('\n');
  await Promise.all([
    signCertificate(dir, 'apiserver', '/CN=kube-apiserver', serving, ca),
    signCertificate(dir, 'admin', subject('admin', ['system:masters']), CLIENT_EXT, ca),
    // The controller manager's identity. Unlike smoke.sh, every controller runs under it (no
    // --use-service-account-credentials: a service account and token per controller cost ~4 s of startup), so it
    // is also in system:masters, which lets each controller do its job.
    signCertificate(dir, 'kcm', subject('system:kube-controller-manager', ['system:masters']), CLIENT_EXT, ca),
    // Service-account token signing key pair.
    (async () => {
      await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'sa.key'], dir);
      await openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
    })(),
  ]);
}

// --- Binaries ---------------------------------------------------------------------------------------------------------

const BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager'];

/** Runs a script that prints a directory as its last stdout line; shows its progress if it takes a while. */
async function scriptDir(script: string, what: string, log: (line: string) => void, slowNotice?: string): Promise<string> {
  let shown = false;
  let buffered = '';
  const show = () => {
    if (shown) return;
    shown = true;
    if (slowNotice) log(slowNotice);
    if (buffered) process.stderr.write(buffered);
  };
  const timer = setTimeout(show, 2_000);
  const result = await run('bash', [script], {
    onStderr: (chunk) => {
      if (shown) process.stderr.write(chunk);
      else buffered += chunk;
    },
  }).finally(() => clearTimeout(timer));
  if (result.code !== 0) {
    if (/go not found/.test(result.stderr)) {
      throw new Error(`${PREFIX}: the Kubernetes binaries are not built yet, and building them needs Go (see the go lines of test/k8s/kubernetes/go.mod and test/k8s/etcd/go.mod), which is not in PATH. Install Go and run again (the first build takes about 10 minutes), or pass a binDir with ${BINARIES.join(', ')} to startControlPlane.`);
    }
    throw new Error(`${PREFIX}: ${script} failed (exit ${result.code}) while getting ${what}:\n${result.stderr.trim().split('\n').slice(-30).join('\n')}`);
  }
  const dir = result.stdout.trim().split('\n').pop() ?? '';
  if (!dir) throw new Error(`${PREFIX}: ${script} printed no directory`);
  return dir;
}

async function binaries(root: string, log: (line: string) => void): Promise<string> {
  const dir = await scriptDir(join(root, 'test/k8s/build.sh'), 'the control plane binaries', log, `${PREFIX}: building etcd, kube-apiserver and kube-controller-manager with test/k8s/build.sh (about 10 minutes the first time; cached afterwards)...`);
  for (const name of BINARIES) if (!existsSync(join(dir, name))) throw new Error(`${PREFIX}: ${name} is missing from ${dir}; rerun test/k8s/build.sh with LLMROUTE_K8S_REBUILD=1`);
  return dir;
}

// --- CRDs ---------------------------------------------------------------------------------------------------------------

interface Crd {
  metadata: { name: string };
  spec: { group: string; names: { plural: string }; versions: { name: string; served: boolean }[] };
}

async function crdFiles(paths: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const path of paths) {
    if ((await stat(path)).isDirectory()) {
      files.push(...(await readdir(path)).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(path, f)));
    } else files.push(path);
  }
  return files;
}

/**
 * Creates each CRD (as JSON straight from the YAML: client-node's serializer would drop `x-kubernetes-*`), then waits
 * until each is Established and its resource shows up in discovery, which is what kubectl looks at.
 */
async function installCrds(state: ControlPlaneState, paths: string[], died: () => boolean): Promise<string[]> {
  const credentials = credentialsOf(state);
  const crds: Crd[] = [];
  for (const file of await crdFiles(paths)) {
    for (const doc of parseAllDocuments(await readFile(file, 'utf8'))) {
      if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      const value = doc.toJS() as (Crd & { kind?: string }) | null;
      if (value?.kind === 'CustomResourceDefinition') crds.push(value);
    }
  }
  const base = `${state.server}/apis/apiextensions.k8s.io/v1/customresourcedefinitions`;
  const log = state.processes['kube-apiserver']!.log;
  await Promise.all(
    crds.map(async (crd) => {
      const created = await request(base, credentials, 'POST', crd);
      if (created.status !== 201) throw new Error(`creating CRD ${crd.metadata.name} failed with HTTP ${created.status}: ${created.body}`);
      await waitUntil(
        `CRD ${crd.metadata.name} Established`,
        30_000,
        async () => {
          const got = await request(`${base}/${crd.metadata.name}`, credentials);
          const conditions = (JSON.parse(got.body) as { status?: { conditions?: { type: string; status: string }[] } }).status?.conditions ?? [];
          return ['Established', 'NamesAccepted'].every((type) => conditions.some((c) => c.type === type && c.status === 'True'));
        },
        died,
        log,
      );
      for (const version of crd.spec.versions.filter((v) => v.served)) {
        const groupVersion = `${state.server}/apis/${crd.spec.group}/${version.name}`;
        await waitUntil(
          `${crd.spec.names.plural}.${crd.spec.group}/${version.name} in discovery`,
          30_000,
          async () => {
            const got = await request(groupVersion, credentials);
            return got.status === 200 && (JSON.parse(got.body) as { resources: { name: string }[] }).resources.some((r) => r.name === crd.spec.names.plural);
          },
          died,
          log,
        );
        // Established is not the end: until its storage (watch cache) is up, a list answers 429 "storage is
        // (re)initializing". Hand over a cluster whose new kinds can be listed.
        await waitUntil(`${crd.spec.names.plural}.${crd.spec.group}/${version.name} listable`, 30_000, async () => (await request(`${groupVersion}/${crd.spec.names.plural}?limit=1`, credentials)).status === 200, died, log);
      }
    }),
  );
  return crds.map((c) => c.metadata.name);
}

// --- Commands -------------------------------------------------------------------------------------------------------

function etcdCommand(state: ControlPlaneState): Omit<ProcessRecord, 'pid'> {
  const { dir, binDir, ports } = state;
  return {
    command: join(binDir, 'etcd'),
    cwd: dir,
    log: join(dir, 'etcd.log'),
    args: [
      '--name=llmroute-test',
      `--data-dir=${join(dir, 'etcd-data')}`,
      `--listen-client-urls=http://127.0.0.1:${ports.etcd}`,
      `--advertise-client-urls=http://127.0.0.1:${ports.etcd}`,
      `--listen-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
      `--initial-cluster=llmroute-test=http://127.0.0.1:${ports.etcdPeer}`,
      // A test cluster's data is thrown away anyway: no fsync, and a small backend quota.
      '--unsafe-no-fsync',
      '--quota-backend-bytes=1073741824',
      '--log-level=warn',
    ],
  };
}

function apiServerCommand(state: ControlPlaneState, profiling = false): Omit<ProcessRecord, 'pid'> {
  const { dir, binDir, ports } = state;
  return {
    command: join(binDir, 'kube-apiserver'),
    cwd: dir,
    log: join(dir, 'kube-apiserver.log'),
    args: [
      `--etcd-servers=http://127.0.0.1:${ports.etcd}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${ports.apiServer}`,
      '--tls-cert-file=apiserver.crt',
      '--tls-private-key-file=apiserver.key',
      '--client-ca-file=ca.crt',
      '--authorization-mode=RBAC',
      `--service-account-issuer=${state.server}`,
      '--service-account-key-file=sa.pub',
      '--service-account-signing-key-file=sa.key',
      '--service-cluster-ip-range=10.0.0.0/24',
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      // The loopback advertise address cannot be an endpoint of the `kubernetes` Service (logged every 10 s otherwise).
      '--endpoint-reconciler-type=none',
      // Lean: no request queueing machinery (and its bootstrap objects), no pprof endpoints unless asked for.
      '--enable-priority-and-fairness=false',
      `--profiling=${profiling}`,
      // Without this, a graceful shutdown (SIGTERM) waits 60 s for open watches, e.g. the controller manager's.
      '--shutdown-watch-termination-grace-period=2s',
    ],
  };
}

function controllerManagerCommand(state: ControlPlaneState): Omit<ProcessRecord, 'pid'> {
  const { dir, binDir, ports } = state;
  const kubeconfig = join(dir, 'kcm.kubeconfig');
  return {
    command: join(binDir, 'kube-controller-manager'),
    cwd: dir,
    log: join(dir, 'kube-controller-manager.log'),
    args: [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      // There is no front-proxy CA to look up; without these it logs "missing content for CA bundle" forever.
      '--authentication-skip-lookup=true',
      '--client-ca-file=ca.crt',
      '--bind-address=127.0.0.1',
      `--secure-port=${ports.controllerManager}`,
      `--cert-dir=${join(dir, 'kcm-certs')}`,
      '--service-account-private-key-file=sa.key',
      '--root-ca-file=ca.crt',
      '--cluster-signing-cert-file=ca.crt',
      '--cluster-signing-key-file=ca.key',
      // One instance: no lease to acquire at start, and no exit on a lost lease while the API server restarts.
      '--leader-elect=false',
      '--profiling=false',
    ],
  };
}

// --- Restart from any process ----------------------------------------------------------------------------------------

/** Serialises restarts across workers; anyone can wait for a restart in progress to finish. */
async function withRestartLock<T>(state: ControlPlaneState, fn: () => Promise<T>): Promise<T> {
  const lock = join(state.dir, RESTART_LOCK);
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (Date.now() > deadline) throw new Error(`${PREFIX}: ${lock} held for 3 minutes; remove it if no restart is running`);
      await sleep(100);
    }
  }
  try {
    return await fn();
  } finally {
    await rmdir(lock).catch(() => undefined);
  }
}

/** Resolves when no API server restart is in progress (clients may call this before talking to the cluster). */
export async function apiServerSettled(statePath: string, timeoutMs = 180_000): Promise<void> {
  const lock = join(dirname(statePath), RESTART_LOCK);
  const deadline = Date.now() + timeoutMs;
  while (existsSync(lock) && Date.now() < deadline) await sleep(100);
}

/**
 * Stops the API server recorded in the state file and starts it again with the same command line, on the same port;
 * records the new pid (so teardown stops the new process) and resolves once /readyz answers. Works from any process:
 * the new API server is not tied to the caller's lifetime.
 */
export async function restartApiServerFrom(statePath: string, options: RestartOptions = {}): Promise<void> {
  const first = readState(statePath);
  await withRestartLock(first, async () => {
    const state = readState(statePath);
    const old = state.processes['kube-apiserver'];
    if (!old) throw new Error(`${PREFIX}: no kube-apiserver in ${statePath}`);
    await terminate(old, options.signal ?? 'SIGTERM');
    if (options.downMs) await sleep(options.downMs);
    const { pid: _old, ...command } = old;
    await writeFile(old.log, `\n----- ${new Date().toISOString()}: restarted by pid ${process.pid} -----\n`, { flag: 'a' });
    const { child, record } = launch(command);
    state.processes['kube-apiserver'] = record;
    state.apiServerRestarts++;
    await writeState(statePath, state);
    await waitForApiServer(state, exitWatcher(child, record));
  });
}

// --- Start and stop ---------------------------------------------------------------------------------------------------

/**
 * Watches the test run's process from outside: if it dies without stop() (SIGKILL, a crash), this stops the control
 * plane and removes the directory. stop() kills the reaper first.
 */
function startReaper(statePath: string, dir: string, binDir: string, keep: boolean): ChildProcess {
  const script = [
    'parent=$1 state=$2 dir=$3 keep=$4 bin=$5',
    'while kill -0 "$parent" 2>/dev/null; do sleep 1; done',
    '[ -f "$state" ] || exit 0',
    'pids=$(sed -n \'s/.*"pid": *\\([0-9][0-9]*\\).*/\\1/p\' "$state")',
    'ours() { tr "\\0" "\\n" <"/proc/$1/cmdline" 2>/dev/null | head -1 | grep -qF "$bin/"; }',
    'for p in $pids; do ours "$p" && kill -TERM "$p" 2>/dev/null; done',
    'sleep 3',
    'for p in $pids; do ours "$p" && kill -KILL "$p" 2>/dev/null; done',
    '[ "$keep" = 1 ] || rm -rf "$dir"',
  ].join('\n');
  const reaper = spawn('sh', ['-c', script, 'llmroute-k8s-reaper', String(process.pid), statePath, dir, keep ? '1' : '0', binDir], { detached: true, stdio: 'ignore' });
  reaper.unref();
  return reaper;
}

async function stopProcesses(statePath: string): Promise<void> {
  if (!existsSync(statePath)) return;
  // Wait for a restart in progress, or we would stop the old API server and miss the new one.
  await apiServerSettled(statePath, 120_000);
  const { processes } = readState(statePath);
  await Promise.all([processes['kube-controller-manager'], processes['kube-apiserver']].map((r) => r && terminate(r)));
  if (processes.etcd) await terminate(processes.etcd);
}

/** Synchronous last resort for process exit: SIGKILL whatever the state file lists. */
function killNow(statePath: string, dir: string, keep: boolean): void {
  try {
    const state = readState(statePath);
    for (const record of Object.values(state.processes)) {
      if (record && isRunning(record.pid, record.command)) process.kill(record.pid, 'SIGKILL');
    }
  } catch {
    // nothing recorded
  }
  if (!keep) rmSync(dir, { recursive: true, force: true });
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const root = options.root ?? findRoot(process.cwd());
  const keep = options.keepDir ?? process.env.LLMROUTE_KEEP_CLUSTER === '1';
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce({ ...options, log, root, keepDir: keep }, started);
    } catch (error) {
      // Free ports are picked before the processes bind them; another process can win the race. Try fresh ports.
      if (error instanceof StartupError && error.portInUse && attempt < 3) {
        log(`${PREFIX}: a port was taken meanwhile; retrying with new ports`);
        continue;
      }
      throw error;
    }
  }
}

async function startOnce(options: ControlPlaneOptions & { log: (line: string) => void; root: string; keepDir: boolean }, started: number): Promise<ControlPlane> {
  const { log, root, keepDir } = options;
  const timings: StartupTimings = { binaries: 0, certificates: 0, etcd: 0, apiServer: 0, crds: 0, controllerManager: 0, total: 0 };
  const time = async <T>(phase: keyof StartupTimings, fn: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try {
      return await fn();
    } finally {
      timings[phase] = Date.now() - t0;
    }
  };

  const dir = await mkdtemp(join(tmpdir(), 'llmroute-k8s-'));
  const statePath = join(dir, STATE_FILE);
  const onExit = () => killNow(statePath, dir, keepDir);
  process.on('exit', onExit);
  let reaper: ChildProcess | undefined;
  const children: Partial<Record<Component, ChildProcess>> = {};

  const stop = async () => {
    process.off('exit', onExit);
    if (reaper?.pid) {
      try {
        process.kill(-reaper.pid, 'SIGKILL'); // its process group: the shell and its sleep
      } catch {
        // already gone
      }
    }
    await stopProcesses(statePath);
    if (keepDir) log(`${PREFIX}: kept ${dir} (LLMROUTE_KEEP_CLUSTER=1)`);
    else await rm(dir, { recursive: true, force: true });
  };

  try {
    const [binDir, toolsDir] = await Promise.all([
      options.binDir ?? time('binaries', () => binaries(root, log)),
      options.toolsDir ?? scriptDir(join(root, 'test/k8s/tools.sh'), 'kubectl and helm', log),
      time('certificates', () => makeCertificates(dir)),
    ]);
    const [etcd, etcdPeer, apiServer, controllerManager] = (await freePorts(4)) as [number, number, number, number];
    const server = `https://127.0.0.1:${apiServer}`;
    const state: ControlPlaneState = {
      dir,
      server,
      kubeconfigPath: join(dir, 'kubeconfig'),
      binDir,
      toolsDir,
      caCert: join(dir, 'ca.crt'),
      caKey: join(dir, 'ca.key'),
      adminCert: join(dir, 'admin.crt'),
      adminKey: join(dir, 'admin.key'),
      ports: { etcd, etcdPeer, apiServer, controllerManager },
      processes: {},
      apiServerRestarts: 0,
    };
    const start = async (component: Component, command: Omit<ProcessRecord, 'pid'>) => {
      const { child, record } = launch(command);
      children[component] = child;
      state.processes[component] = record;
      await writeState(statePath, state);
      return exitWatcher(child, record);
    };
    await writeState(statePath, state);
    reaper = startReaper(statePath, dir, binDir, keepDir);

    await time('etcd', async () => {
      const died = await start('etcd', etcdCommand(state));
      await waitUntil('etcd /health', 30_000, async () => (await fetch(`http://127.0.0.1:${etcd}/health`)).ok, died, join(dir, 'etcd.log'));
    });
    const apiServerDied = await time('apiServer', async () => {
      const died = await start('kube-apiserver', apiServerCommand(state, options.apiServerProfiling));
      await waitForApiServer(state, died);
      return died;
    });
    await Promise.all([
      writeKubeconfig(state.kubeconfigPath, server, state.caCert, { cert: state.adminCert, key: state.adminKey }, 'admin'),
      writeKubeconfig(join(dir, 'kcm.kubeconfig'), server, state.caCert, { cert: join(dir, 'kcm.crt'), key: join(dir, 'kcm.key') }, 'system:kube-controller-manager'),
    ]);
    const crdPaths = options.crds ?? [join(root, 'crds/llmroute.dev_llmroutes.yaml'), join(root, 'test/k8s/fixtures')];
    const [crdNames] = await Promise.all([
      time('crds', () => installCrds(state, crdPaths, apiServerDied)),
      options.controllerManager === false
        ? undefined
        : time('controllerManager', async () => {
            const died = await start('kube-controller-manager', controllerManagerCommand(state));
            const kcmLog = join(dir, 'kube-controller-manager.log');
            await waitUntil('kube-controller-manager /healthz', 60_000, async () => (await request(`https://127.0.0.1:${controllerManager}/healthz`, 'insecure')).status === 200, died, kcmLog);
            // Controllers are running once the service account controller has made `default` in `default`.
            const credentials = credentialsOf(state);
            await waitUntil('kube-controller-manager controllers (default service account)', 60_000, async () => (await request(`${server}/api/v1/namespaces/default/serviceaccounts/default`, credentials)).status === 200, died, kcmLog);
          }),
    ]);
    timings.total = Date.now() - started;
    log(
      `${PREFIX}: control plane up in ${seconds(timings.total)} (certificates ${seconds(timings.certificates)}, etcd ${seconds(timings.etcd)}, kube-apiserver ${seconds(timings.apiServer)}, ` +
        `CRDs ${seconds(timings.crds)} [${crdNames.length}], controller-manager ${seconds(timings.controllerManager)}) at ${server}; logs in ${dir}`,
    );

    return {
      dir,
      statePath,
      kubeconfigPath: state.kubeconfigPath,
      server,
      binDir,
      toolsDir,
      timings,
      restartApiServer: (restart?: RestartOptions) => restartApiServerFrom(statePath, restart),
      kubeconfigFor: (user: string, groups: string[] = []) => mintKubeconfig(readState(statePath), user, groups),
      stop,
    };
  } catch (error) {
    await stop().catch(() => undefined);
    if (error instanceof StartupError || (error as Error).message.startsWith(PREFIX)) throw error;
    throw new Error(`${PREFIX}: starting the control plane failed: ${(error as Error).message}`, { cause: error });
  }
}
