import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for the gateway's /metrics endpoint whose counters and histograms the test drives, so a real Prometheus
 * can scrape known traffic. It writes the Prometheus text format itself: the test controls every sample and bucket.
 */
export interface MetricsExporter {
  /** `host:port`, as a Prometheus scrape target. */
  address: string;
  /** Adds to a counter series; `by` 0 creates the series at zero, as a counter that exists before its first event. */
  inc(name: string, labels: Labels, by: number): void;
  /** Records `count` observations of `value` seconds in a histogram series; `count` 0 creates it empty. */
  observe(name: string, labels: Labels, value: number, count: number): void;
  close(): Promise<void>;
}

type Labels = Record<string, string>;

/**
 * Doubling buckets: a quantile interpolated inside one comes out as lower bound + width × 0.99, e.g. 0.199 or 3.18,
 * never on a rounding tie such as 0.4975, so tests can expect exact three-digit figures.
 */
const BUCKETS = [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8];

interface Histogram {
  buckets: number[];
  count: number;
  sum: number;
}

export async function startMetricsExporter(): Promise<MetricsExporter> {
  const counters = new Map<string, Map<string, number>>();
  const histograms = new Map<string, Map<string, Histogram>>();
  const seriesOf = <T>(families: Map<string, Map<string, T>>, name: string) => {
    const family = families.get(name) ?? new Map<string, T>();
    families.set(name, family);
    return family;
  };

  const server = createServer((request, response) => {
    if (request.url !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    const lines: string[] = [];
    for (const [name, series] of counters) {
      lines.push(`# TYPE ${name} counter`);
      for (const [labels, value] of series) lines.push(`${name}{${labels}} ${value}`);
    }
    for (const [name, series] of histograms) {
      lines.push(`# TYPE ${name} histogram`);
      for (const [labels, histogram] of series) {
        BUCKETS.forEach((le, i) => lines.push(`${name}_bucket{${labels},le="${le}"} ${histogram.buckets[i]}`));
        lines.push(`${name}_bucket{${labels},le="+Inf"} ${histogram.count}`);
        lines.push(`${name}_sum{${labels}} ${histogram.sum}`, `${name}_count{${labels}} ${histogram.count}`);
      }
    }
    response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`${lines.join('\n')}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    address: `127.0.0.1:${port}`,
    inc(name, labels, by) {
      const series = seriesOf(counters, name);
      const key = formatLabels(labels);
      series.set(key, (series.get(key) ?? 0) + by);
    },
    observe(name, labels, value, count) {
      const series = seriesOf(histograms, name);
      const key = formatLabels(labels);
      const histogram = series.get(key) ?? { buckets: BUCKETS.map(() => 0), count: 0, sum: 0 };
      BUCKETS.forEach((le, i) => {
        if (value <= le) histogram.buckets[i] = (histogram.buckets[i] ?? 0) + count;
      });
      histogram.count += count;
      histogram.sum += value * count;
      series.set(key, histogram);
    },
    async close() {
      // Prometheus keeps its scrape connection alive; close() alone would wait for it.
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}

/** Label pairs in a fixed order, values escaped as the text format requires. */
function formatLabels(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((name) => `${name}="${(labels[name] as string).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');
}
