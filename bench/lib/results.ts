/** The shape of bench/results/<date>.json: everything BENCHMARKS.md is generated from. */
import type { Summary } from './stats.js';

/** A latency summary with its figures rounded for the report. */
export type RoundedSummary = Summary;

export interface CurvePoint {
  q: number;
  ms: number;
}

export interface StepRecord {
  round: number;
  /** 2 when the step is the repeat of a failed one. */
  attempt?: number;
  rate: number;
  pass: boolean;
  completed: number;
  scheduled: number;
  errors: number;
  firstError?: string;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  achievedRps: number;
  cpuUsPerRequest: number;
  targetCpuPct: number;
  fakeCpuPct: number;
  generatorCpuPct: number;
  /** CPU used meanwhile by processes that are not this run's (other people's builds and tests), % of one core. */
  foreignCpuPct?: number;
  sendLagP99Ms: number;
  rssPeakMB: number;
}

export interface ThroughputResult {
  /** Median over rounds of the highest rate that passed (the lower one for two rounds). */
  sustainedRps: number;
  /** True when the ladder's top rate passed: the figure is a lower bound. */
  capped?: boolean;
  rounds: { sustainedRps: number; capped: boolean }[];
  steps: StepRecord[];
  cpuUsPerRequestAtCommonRate?: { rate: number; us: number };
  /** Closed loop, latency ignored: the most it answers per second (median over rounds). */
  peak?: { concurrency: number; rps: number; p50Ms: number; p99Ms: number; errors: number; firstError?: string; targetCpuPct: number; cpuUsPerRequest?: number; rounds: number[] };
}

export interface ProfileEntry {
  name: string;
  where: string;
  selfMs: number;
  selfPct: number;
  totalMs?: number;
  totalPct?: number;
}

export interface ProfileResult {
  reason: 'missed' | 'asked';
  rate: number;
  durationMs: number;
  requests: number;
  p99Ms: number;
  /** CPU-busy time in the profile (samples not idle), ms. */
  busyMs: number;
  cpuUsPerRequest: number;
  topSelf: ProfileEntry[];
  /** llmroute's own functions by inclusive time. */
  topLlmrouteTotal: ProfileEntry[];
  /** Self time by area: llmroute files, undici, prom-client, node internals, GC. */
  byArea: { area: string; selfMs: number; selfPct: number }[];
  file?: string;
  error?: string;
}

export type ControllerResult =
  | { done: false; reason: string }
  | {
      done: true;
      routes: number;
      environmentsPerRoute: number;
      /** Seconds until every route was Ready; absent when the wait ended first. */
      allReadyS?: number;
      readyAtEnd: number;
      waitedS: number;
      readyWithin60s: boolean;
      /** Seconds from the first create until the controller stopped sending requests (absent if it did not, in time). */
      quietAfterS?: number;
      progress: { s: number; ready: number; requests: number }[];
      controllerRssPeakMB: number;
      controllerRssAfterMB: number;
      apiRequests: number;
      apiRequestsPerRoute: number;
      apiRequestsByVerb: Record<string, number>;
      changeToConfigMapMs?: { n: number; p50: number; p99: number; max: number; timeouts?: number; timeoutMs?: number };
      synth100RoutesS?: number;
      synthNote?: string;
      notes: string[];
    };

export interface Results {
  schema: 1;
  date: string;
  mode: 'quick' | 'full';
  command: string;
  machine: Record<string, string | number>;
  versions: {
    node: string;
    llmroute: { version: string; commit: string; dirty: boolean };
    llmrouteRuntime?: string;
    undici: string;
    portkey?: string;
    portkeyHonoNodeServer?: string;
    litellm?: string;
    python?: string;
  };
  settings: Record<string, number>;
  targets: { id: string; label: string; group: string; config: string; version?: string; startupMs?: number; unavailable?: string }[];
  latency: Record<string, { summary: RoundedSummary; curve: CurvePoint[]; errors: number; firstError?: string; addedMs: { p50: number; p99: number; mean: number } }>;
  streaming: Record<
    string,
    {
      streams: number;
      complete: number;
      firstError?: string;
      ttfbMs: RoundedSummary;
      ttftMs: RoundedSummary;
      totalMs: RoundedSummary;
      chunkDelayMs: RoundedSummary;
      addedMs: { ttfbP50: number; ttfbP99: number; ttftP50: number; chunkP50: number; chunkP99: number; totalP50: number };
    }
  >;
  fallback: Record<
    string,
    {
      summary: RoundedSummary;
      curve: CurvePoint[];
      errors: number;
      firstError?: string;
      addedOverDirectMs?: { p50: number; p99: number };
      addedOverNormalPathMs?: { p50: number; p99: number };
    }
  >;
  throughput: Record<string, ThroughputResult>;
  memory: Record<string, { idleMB?: number; loadMB?: number; sustainedLoadMB?: number; afterLoadMB?: number; idleCpuPct?: number }>;
  profile?: ProfileResult;
  controller?: ControllerResult;
  durationS: number;
  /** CPU used during the measurements by processes that are not this run's, % of one core on average. */
  foreignCpuPct?: number;
}
