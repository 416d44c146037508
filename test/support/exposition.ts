/** The Prometheus text format as far as prom-client writes it, for tests that scrape a /metrics endpoint. */

export interface Family {
  name: string;
  type: string;
  series: Record<string, string>[];
}

/** `# TYPE` lines and samples, by family; a histogram's `_bucket`, `_sum` and `_count` samples go to their family. */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      families.set(type[1]!, { name: type[1]!, type: type[2]!, series: [] });
      continue;
    }
    if (!line || line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+\S+/.exec(line);
    if (!sample) throw new Error(`unreadable sample line: ${line}`);
    const name = sample[1]!;
    const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''));
    if (!family) throw new Error(`sample ${name} has no # TYPE line`);
    const labels: Record<string, string> = {};
    for (const m of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
    family.series.push(labels);
  }
  return families;
}
