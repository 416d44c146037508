/**
 * Tracing's pure parts: the OTEL_* variables that turn tracing on and shape it, and W3C trace context in and out.
 * (test/gateway/e2e/tracing.test.ts exports real spans from a real gateway.)
 */
import { describe, expect, it } from '@jest/globals';
import { tracingSettings } from '../../src/gateway/tracing-settings.js';
import { callerSpan, traceparent } from '../../src/gateway/tracing.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('tracingSettings', () => {
  it('is off without an OTLP endpoint, with the SDK disabled, or with another traces exporter', () => {
    expect(tracingSettings({})).toBeUndefined();
    expect(tracingSettings({ OTEL_SERVICE_NAME: 'gw', OTEL_TRACES_SAMPLER: 'always_on' })).toBeUndefined();
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' })).toBeUndefined();
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_TRACES_EXPORTER: 'none' })).toBeUndefined();
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_TRACES_EXPORTER: 'console, otlp' })?.url).toBe('http://collector:4318/v1/traces');
  });

  it('sends to the traces endpoint as given, or to the base endpoint\'s /v1/traces', () => {
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' })?.url).toBe('http://collector:4318/v1/traces');
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example.com/otlp' })?.url).toBe('https://traces.example.com/otlp');
  });

  it('samples parent-based, always on, unless OTEL_TRACES_SAMPLER says otherwise; warns of what it cannot honour', () => {
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
    expect(tracingSettings(on)).toEqual({ url: 'http://c:4318/v1/traces', sampler: { root: 'always_on', parentBased: true, ratio: 1 }, serviceName: undefined, warnings: [] });
    expect(tracingSettings({ ...on, OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' })?.sampler).toEqual({ root: 'traceidratio', parentBased: false, ratio: 0.25 });
    expect(tracingSettings({ ...on, OTEL_TRACES_SAMPLER: 'parentbased_always_off' })?.sampler).toEqual({ root: 'always_off', parentBased: true, ratio: 1 });
    expect(tracingSettings({ ...on, OTEL_SERVICE_NAME: 'support-gateway' })?.serviceName).toBe('support-gateway');
    const odd = tracingSettings({ ...on, OTEL_TRACES_SAMPLER: 'jaeger_remote', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' });
    expect(odd?.sampler).toEqual({ root: 'always_on', parentBased: true, ratio: 1 });
    expect(odd?.warnings).toEqual([expect.stringContaining('OTLP protocol grpc is not supported'), expect.stringContaining('OTEL_TRACES_SAMPLER=jaeger_remote is not supported')]);
    const badRatio = tracingSettings({ ...on, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' });
    expect(badRatio?.sampler).toEqual({ root: 'traceidratio', parentBased: true, ratio: 1 });
    expect(badRatio?.warnings).toEqual([expect.stringContaining('OTEL_TRACES_SAMPLER_ARG=2 is not a ratio')]);
    expect(tracingSettings({ ...on, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })?.warnings).toEqual([]);
  });
});

describe('W3C trace context', () => {
  it('reads the caller\'s span from traceparent and tracestate', () => {
    expect(callerSpan({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'rojo=00f067aa0ba902b7' })).toMatchObject({ traceId: TRACE, spanId: SPAN, traceFlags: 1, isRemote: true });
    expect(callerSpan({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'rojo=00f067aa0ba902b7' })?.traceState?.get('rojo')).toBe('00f067aa0ba902b7');
    expect(callerSpan({ traceparent: `00-${TRACE}-${SPAN}-00` })).toMatchObject({ traceFlags: 0 });
    // A later version may add fields.
    expect(callerSpan({ traceparent: `01-${TRACE}-${SPAN}-01-future` })).toMatchObject({ traceId: TRACE });
  });

  it('ignores what is absent, malformed, all zeros, version ff, or version 00 with extra fields', () => {
    for (const header of [undefined, '', 'garbage', `00-${TRACE}-${SPAN}`, `00-${TRACE.toUpperCase()}-${SPAN}-01`, `00-${'0'.repeat(32)}-${SPAN}-01`, `00-${TRACE}-${'0'.repeat(16)}-01`, `ff-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-01-extra`]) {
      expect({ header, span: callerSpan(header === undefined ? {} : { traceparent: header }) }).toEqual({ header, span: undefined });
    }
  });

  it('writes traceparent for a span, sampled or not', () => {
    expect(traceparent({ traceId: TRACE, spanId: SPAN, traceFlags: 1 })).toBe(`00-${TRACE}-${SPAN}-01`);
    expect(traceparent({ traceId: TRACE, spanId: SPAN, traceFlags: 0 })).toBe(`00-${TRACE}-${SPAN}-00`);
  });
});
