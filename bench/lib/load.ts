/**
 * The load generator: sequential requests at concurrency 1, single streams with per-chunk timing, and open-loop
 * load at a fixed request rate (requests are sent on a schedule whatever the answers do, and each latency is counted
 * from the moment its request was due, so a target that falls behind is charged for the wait: no coordinated
 * omission). Everything goes through undici with keep-alive connections.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { setMaxListeners } from 'node:events';
import { Client, Pool, type Dispatcher } from 'undici';
import { PACED_USER } from './shared.js';

export interface Endpoint {
  origin: string;
  path: string;
  headers: Record<string, string>;
  /** Request body of a non-streaming chat completion. */
  body: string;
  /** Request body of a streaming one. */
  streamBody: string;
}

export const wallNow = () => performance.timeOrigin + performance.now();

export function chatBody(model: string, stream: boolean): string {
  return JSON.stringify({
    model,
    messages: [
      { role: 'system', content: 'You are a concise assistant for a platform engineering team.' },
      { role: 'user', content: 'In one sentence, what does a load balancer do?' },
    ],
    max_tokens: 128,
    ...(stream ? { stream: true, stream_options: { include_usage: true }, user: PACED_USER } : {}),
  });
}

export function connection(endpoint: Endpoint): Client {
  return new Client(endpoint.origin, { keepAliveTimeout: 30_000, headersTimeout: 30_000, bodyTimeout: 30_000 });
}

export function pool(endpoint: Endpoint, connections = 512): Pool {
  return new Pool(endpoint.origin, { connections, keepAliveTimeout: 30_000, headersTimeout: 10_000, bodyTimeout: 10_000 });
}

export interface Answer {
  ms: number;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export async function send(dispatcher: Dispatcher, endpoint: Endpoint, body = endpoint.body, signal?: AbortSignal): Promise<Answer> {
  const started = performance.now();
  const response = await dispatcher.request({ path: endpoint.path, method: 'POST', headers: endpoint.headers, body, ...(signal ? { signal } : {}) });
  const text = await response.body.text();
  return { ms: performance.now() - started, status: response.statusCode, headers: response.headers, text };
}

/** A non-streaming answer that is a real chat completion; throws with what came back otherwise. */
export function checkCompletion(answer: Answer, what: string): void {
  let content: unknown;
  try {
    content = (JSON.parse(answer.text) as { choices?: { message?: { content?: unknown } }[] }).choices?.[0]?.message?.content;
  } catch {
    content = undefined;
  }
  if (answer.status !== 200 || typeof content !== 'string' || content.length === 0) {
    throw new Error(`${what}: expected a chat completion, got ${answer.status}: ${answer.text.slice(0, 300)}`);
  }
}

export interface Sequential {
  samples: number[];
  errors: number;
  firstError?: string;
}

/** `n` requests one after another on one keep-alive connection. */
export async function sequential(client: Dispatcher, endpoint: Endpoint, n: number): Promise<Sequential> {
  const samples: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  for (let i = 0; i < n; i++) {
    try {
      const answer = await send(client, endpoint);
      if (answer.status === 200) samples.push(answer.ms);
      else {
        errors += 1;
        firstError ??= `status ${answer.status}: ${answer.text.slice(0, 200)}`;
      }
    } catch (error) {
      errors += 1;
      firstError ??= String(error);
    }
  }
  return { samples, errors, ...(firstError ? { firstError } : {}) };
}

export interface StreamTiming {
  /** Request sent → first body byte. */
  ttfbMs: number;
  /** Request sent → first content chunk. */
  ttftMs: number;
  /** Request sent → end of the stream. */
  totalMs: number;
  /** Per content chunk: when the client read it minus when the fake wrote it (wall clock, both processes). */
  chunkDelaysMs: number[];
  chunks: number;
  done: boolean;
}

const STAMP = /\[(\d{10,}\.\d+)\]/g;

/** One streaming request, with the one-way delay of every content chunk (the fake stamps each with its write time). */
export async function streamOnce(client: Dispatcher, endpoint: Endpoint): Promise<StreamTiming> {
  const started = performance.now();
  const response = await client.request({ path: endpoint.path, method: 'POST', headers: endpoint.headers, body: endpoint.streamBody });
  if (response.statusCode !== 200) throw new Error(`stream answered ${response.statusCode}: ${(await response.body.text()).slice(0, 300)}`);
  let ttfb = Number.NaN;
  let ttft = Number.NaN;
  let buffer = '';
  let done = false;
  const delays: number[] = [];
  for await (const chunk of response.body) {
    const at = wallNow();
    const since = performance.now() - started;
    if (Number.isNaN(ttfb)) ttfb = since;
    buffer += (chunk as Buffer).toString('utf8');
    const end = buffer.lastIndexOf('\n\n');
    if (end < 0) continue;
    const events = buffer.slice(0, end);
    buffer = buffer.slice(end + 2);
    for (const match of events.matchAll(STAMP)) {
      if (Number.isNaN(ttft)) ttft = since;
      delays.push(at - Number(match[1]));
    }
    if (events.includes('[DONE]')) done = true;
  }
  return { ttfbMs: ttfb, ttftMs: ttft, totalMs: performance.now() - started, chunkDelaysMs: delays, chunks: delays.length, done };
}

export interface StepResult {
  rate: number;
  durationMs: number;
  scheduled: number;
  completed: number;
  errors: number;
  firstError?: string;
  /** Latencies (ms) counted from each request's due time. */
  latencies: number[];
  /** Completed requests per second over the measured window. */
  achievedRate: number;
  /** How late the generator itself sent requests (ms, p99): its own limit shows here. */
  sendLagP99Ms: number;
}

/**
 * Open-loop load at `rate` requests/s for `durationMs`, after `warmupMs` at the same rate whose results are dropped.
 * Requests still unanswered `graceMs` after the schedule ends are aborted and counted as errors.
 */
export async function openLoop(dispatcher: Dispatcher, endpoint: Endpoint, rate: number, durationMs: number, warmupMs: number, graceMs: number): Promise<StepResult> {
  const warm = Math.round((rate * warmupMs) / 1000);
  const total = warm + Math.round((rate * durationMs) / 1000);
  const interval = 1000 / rate;
  const controller = new AbortController();
  // Every request in flight listens on it.
  setMaxListeners(0, controller.signal);
  const latencies: number[] = [];
  const lags: number[] = [];
  let errors = 0;
  let completed = 0;
  let firstError: string | undefined;
  let outstanding = 0;
  let lastDone = 0;
  let allSent!: () => void;
  const sentAll = new Promise<void>((resolve) => (allSent = resolve));
  let settle: (() => void) | undefined;

  const fire = (index: number, due: number) => {
    const measured = index >= warm;
    outstanding += 1;
    if (measured) lags.push(performance.now() - due);
    dispatcher
      .request({ path: endpoint.path, method: 'POST', headers: endpoint.headers, body: endpoint.body, signal: controller.signal })
      .then(async (response) => {
        await response.body.arrayBuffer();
        if (!measured) return;
        if (response.statusCode === 200) {
          const now = performance.now();
          latencies.push(now - due);
          completed += 1;
          lastDone = now;
        } else {
          errors += 1;
          firstError ??= `status ${response.statusCode}`;
        }
      })
      .catch((error: unknown) => {
        if (!measured) return;
        errors += 1;
        firstError ??= controller.signal.aborted ? `no answer within ${graceMs} ms of the schedule's end` : String((error as Error).message ?? error);
      })
      .finally(() => {
        outstanding -= 1;
        if (outstanding === 0) settle?.();
      });
  };

  const t0 = performance.now() + 2;
  const measuredStart = t0 + warm * interval;
  let sent = 0;
  const tick = () => {
    const now = performance.now();
    const due = Math.min(total, Math.floor((now - t0) / interval) + 1);
    while (sent < due) {
      fire(sent, t0 + sent * interval);
      sent += 1;
    }
    if (sent >= total) allSent();
    else setTimeout(tick, 1);
  };
  setTimeout(tick, 1);
  await sentAll;
  if (outstanding > 0) {
    const settled = new Promise<void>((resolve) => (settle = resolve));
    await Promise.race([settled, sleep(graceMs)]);
  }
  if (outstanding > 0) {
    controller.abort();
    const settled = new Promise<void>((resolve) => (settle = resolve));
    await Promise.race([settled, sleep(2000)]);
  }
  lags.sort((a, b) => a - b);
  const window = Math.max(1, (lastDone || performance.now()) - measuredStart);
  return {
    rate,
    durationMs,
    scheduled: total - warm,
    completed,
    errors,
    ...(firstError ? { firstError } : {}),
    latencies,
    achievedRate: (completed * 1000) / window,
    sendLagP99Ms: lags.length ? (lags[Math.min(lags.length - 1, Math.ceil(0.99 * lags.length) - 1)] as number) : 0,
  };
}

export interface ClosedLoopResult {
  concurrency: number;
  rps: number;
  completed: number;
  /** Answers over the warm-up and the measured window together. */
  answered: number;
  errors: number;
  firstError?: string;
  latencies: number[];
}

/**
 * Closed-loop load: `concurrency` requests always in flight for `durationMs` (after `warmupMs` whose results are
 * dropped). Gives the most a target answers per second when latency does not matter: its saturation throughput.
 */
export async function closedLoop(dispatcher: Dispatcher, endpoint: Endpoint, concurrency: number, durationMs: number, warmupMs: number): Promise<ClosedLoopResult> {
  const start = performance.now();
  const measureFrom = start + warmupMs;
  const end = measureFrom + durationMs;
  const latencies: number[] = [];
  let errors = 0;
  let completed = 0;
  let answered = 0;
  let firstError: string | undefined;
  const worker = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        const response = await dispatcher.request({ path: endpoint.path, method: 'POST', headers: endpoint.headers, body: endpoint.body });
        await response.body.arrayBuffer();
        answered += 1;
        const t1 = performance.now();
        if (t0 < measureFrom || t1 > end) continue;
        if (response.statusCode === 200) {
          completed += 1;
          latencies.push(t1 - t0);
        } else {
          errors += 1;
          firstError ??= `status ${response.statusCode}`;
        }
      } catch (error) {
        if (t0 >= measureFrom) {
          errors += 1;
          firstError ??= String((error as Error).message ?? error);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { concurrency, rps: (completed * 1000) / durationMs, completed, answered, errors, ...(firstError ? { firstError } : {}), latencies };
}
