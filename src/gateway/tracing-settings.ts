/**
 * Tracing settings from the standard OpenTelemetry environment variables. Apart from src/gateway/tracing.ts so that
 * deciding whether tracing is on loads no OpenTelemetry code: the SDK is imported only when it is.
 */
type Env = Readonly<Record<string, string | undefined>>;

/** `OTEL_TRACES_SAMPLER` as data: the root sampler, and whether a sampled or unsampled caller decides instead. */
export interface SamplerSpec {
  root: 'always_on' | 'always_off' | 'traceidratio';
  parentBased: boolean;
  /** Of traces started here, the share sampled (traceidratio). */
  ratio: number;
}

export interface TracingSettings {
  /** Where spans are sent: an OTLP/HTTP traces URL. */
  url: string;
  sampler: SamplerSpec;
  /** `OTEL_SERVICE_NAME`, when set. */
  serviceName: string | undefined;
  /** Settings that were given but cannot be honoured, to log. */
  warnings: string[];
}

const SAMPLERS: Record<string, Omit<SamplerSpec, 'ratio'>> = {
  always_on: { root: 'always_on', parentBased: false },
  always_off: { root: 'always_off', parentBased: false },
  traceidratio: { root: 'traceidratio', parentBased: false },
  parentbased_always_on: { root: 'always_on', parentBased: true },
  parentbased_always_off: { root: 'always_off', parentBased: true },
  parentbased_traceidratio: { root: 'traceidratio', parentBased: true },
};
const DEFAULT_SAMPLER = 'parentbased_always_on';

/** `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` as the specification defines them. */
function samplerOf(env: Env, warnings: string[]): SamplerSpec {
  const name = env.OTEL_TRACES_SAMPLER?.trim() || DEFAULT_SAMPLER;
  const known = SAMPLERS[name];
  if (known === undefined) warnings.push(`OTEL_TRACES_SAMPLER=${name} is not supported (one of ${Object.keys(SAMPLERS).join(', ')}); sampling ${DEFAULT_SAMPLER}`);
  const spec = known ?? (SAMPLERS[DEFAULT_SAMPLER] as Omit<SamplerSpec, 'ratio'>);
  const arg = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  const ratio = arg ? Number(arg) : 1;
  const valid = Number.isFinite(ratio) && ratio >= 0 && ratio <= 1;
  if (spec.root === 'traceidratio' && !valid) warnings.push(`OTEL_TRACES_SAMPLER_ARG=${arg} is not a ratio from 0 to 1; sampling every trace`);
  return { ...spec, ratio: valid ? ratio : 1 };
}

/**
 * The settings, or undefined (tracing off) without an OTLP endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, used as
 * it is, or `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/traces` appended), with `OTEL_SDK_DISABLED=true`, or with
 * `OTEL_TRACES_EXPORTER` naming no `otlp`.
 */
export function tracingSettings(env: Env): TracingSettings | undefined {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  const exporters = env.OTEL_TRACES_EXPORTER?.split(',').map((e) => e.trim());
  if (exporters && !exporters.includes('otlp')) return undefined;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  const url = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || (base ? `${base.replace(/\/+$/, '')}/v1/traces` : undefined);
  if (!url) return undefined;
  const warnings: string[] = [];
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL?.trim() || env.OTEL_EXPORTER_OTLP_PROTOCOL?.trim();
  if (protocol && protocol !== 'http/json') warnings.push(`OTLP protocol ${protocol} is not supported: spans are sent as OTLP/HTTP with JSON, which collectors accept on their HTTP port (4318)`);
  return { url, sampler: samplerOf(env, warnings), serviceName: env.OTEL_SERVICE_NAME?.trim() || undefined, warnings };
}
