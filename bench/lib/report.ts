/**
 * BENCHMARKS.md and its charts, generated from one results file: never edited by hand. `npm run bench -- --report
 * bench/results/<file>.json` regenerates them from an existing file.
 */
import { writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import type { Results, RoundedSummary } from './results.js';

const fmt = (value: number | undefined, digits = 2): string => (value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(digits));
const int = (value: number | undefined): string => (value === undefined || !Number.isFinite(value) ? '—' : Math.round(value).toLocaleString('en-US'));
const ratio = (a: number | undefined, b: number | undefined, digits = 2): string => (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? '—' : `${(a / b).toFixed(digits)}×`);
const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const COLORS: Record<string, string> = {
  direct: '#7f7f7f',
  bare: '#1f77b4',
  llmroute: '#d62728',
  'llmroute-minimal': '#ff9896',
  'llmroute-auth': '#e377c2',
  'llmroute-budget': '#bcbd22',
  'llmroute-fallback': '#8c564b',
  portkey: '#2ca02c',
  'portkey-fallback': '#98df8a',
  litellm: '#9467bd',
  'litellm-fallback': '#c5b0d5',
};

/** Latency percentile curves, log-log: x is 1/(1-q) (so p50, p90, p99, p99.9 are evenly spaced), y is ms. */
export function latencySvg(series: { id: string; label: string; curve: { q: number; ms: number }[] }[], title: string): string {
  const width = 760;
  const height = 440;
  const left = 64;
  const right = 200;
  const top = 40;
  const bottom = 56;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const all = series.flatMap((s) => s.curve.map((p) => p.ms)).filter((v) => v > 0 && Number.isFinite(v));
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...all, 0.1))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...all, 1))));
  const xOf = (q: number) => left + (Math.log10(1 / (1 - q)) / 3) * plotW;
  const yOf = (ms: number) => top + plotH - ((Math.log10(Math.max(ms, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  parts.push(`<text x="${left}" y="22" font-size="15" font-weight="bold">${escapeXml(title)}</text>`);
  for (const [q, label] of [[0, 'p0'], [0.5, 'p50'], [0.9, 'p90'], [0.99, 'p99'], [0.999, 'p99.9']] as const) {
    const x = xOf(q);
    parts.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${top + plotH}" stroke="#ddd"/>`);
    parts.push(`<text x="${x}" y="${top + plotH + 18}" text-anchor="middle">${label}</text>`);
  }
  for (let decade = lo; decade <= hi * 1.001; decade *= 10) {
    for (const m of [1, 2, 5]) {
      const v = decade * m;
      if (v > hi * 1.001) break;
      const y = yOf(v);
      parts.push(`<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="${m === 1 ? '#ccc' : '#eee'}"/>`);
      parts.push(`<text x="${left - 6}" y="${y + 4}" text-anchor="end">${v >= 1 ? v.toFixed(0) : v.toPrecision(1)}</text>`);
    }
  }
  parts.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${left + plotW / 2}" y="${height - 14}" text-anchor="middle">percentile (log scale of 1/(1−q))</text>`);
  parts.push(`<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">latency, ms (log)</text>`);
  series.forEach((s, i) => {
    const color = COLORS[s.id] ?? '#000';
    const points = s.curve.filter((p) => p.ms > 0 && Number.isFinite(p.ms)).map((p) => `${xOf(p.q).toFixed(1)},${yOf(p.ms).toFixed(1)}`);
    parts.push(`<polyline points="${points.join(' ')}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const point of points) {
      const [x, y] = point.split(',');
      parts.push(`<circle cx="${x}" cy="${y}" r="2.5" fill="${color}"/>`);
    }
    const ly = top + 10 + i * 20;
    parts.push(`<line x1="${left + plotW + 14}" y1="${ly}" x2="${left + plotW + 36}" y2="${ly}" stroke="${color}" stroke-width="3"/>`);
    parts.push(`<text x="${left + plotW + 42}" y="${ly + 4}">${escapeXml(s.label)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** Horizontal bars: sustained throughput per target. */
export function throughputSvg(bars: { id: string; label: string; value: number; capped: boolean; faint?: boolean }[], title: string): string {
  const width = 860;
  const rowH = 26;
  const left = 290;
  const right = 110;
  const top = 40;
  const height = top + bars.length * rowH + 30;
  const max = Math.max(1, ...bars.map((b) => b.value));
  const plotW = width - left - right;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  parts.push(`<text x="12" y="22" font-size="15" font-weight="bold">${escapeXml(title)}</text>`);
  bars.forEach((bar, i) => {
    const y = top + i * rowH;
    const w = (bar.value / max) * plotW;
    parts.push(`<text x="${left - 8}" y="${y + 18}" text-anchor="end">${escapeXml(bar.label)}</text>`);
    parts.push(`<rect x="${left}" y="${y + 4}" width="${Math.max(1, w).toFixed(1)}" height="${rowH - 10}" fill="${COLORS[bar.id] ?? '#555'}"${bar.faint ? ' fill-opacity="0.45"' : ''}/>`);
    parts.push(`<text x="${left + w + 6}" y="${y + 18}">${bar.value.toLocaleString('en-US')}${bar.capped ? '+' : ''} req/s</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** A sustained rate for display: a target that passed no step shows the lowest rate it was tried at. */
function sustained(t: { sustainedRps: number; capped?: boolean; steps: { rate: number }[] } | undefined): string {
  if (!t) return '—';
  if (t.sustainedRps > 0) return `${int(t.sustainedRps)}${t.capped ? '+' : ''}`;
  const lowest = Math.min(...t.steps.map((s) => s.rate));
  return `none (p99 over the bound even at ${int(lowest)} req/s)`;
}

function summaryRow(label: string, s: RoundedSummary | undefined, extra: string[] = []): string {
  return `| ${label} | ${fmt(s?.p50, 3)} | ${fmt(s?.p90, 3)} | ${fmt(s?.p99, 3)} | ${fmt(s?.p999, 3)} | ${extra.join(' | ')} |`;
}

const verdict = (ok: boolean | undefined) => (ok === undefined ? 'not measured' : ok ? '**met**' : '**missed**');

export async function writeReport(results: Results, repo: string, resultsFile: string): Promise<void> {
  const stem = basename(resultsFile).replace(/\.json$/, '');
  const resultsDir = join(repo, 'bench', 'results');
  const latencyChart = join(resultsDir, `${stem}-latency.svg`);
  const throughputChart = join(resultsDir, `${stem}-throughput.svg`);
  const label = (id: string) => results.targets.find((t) => t.id === id)?.label ?? id;
  const lat = results.latency;
  const tp = results.throughput;
  const mem = results.memory;

  const latencyIds = Object.keys(lat);
  await writeFile(
    latencyChart,
    latencySvg(
      latencyIds.map((id) => ({ id, label: label(id), curve: lat[id]?.curve ?? [] })),
      `Latency at concurrency 1, non-streaming (${results.mode} run, ${results.date.slice(0, 10)})`,
    ),
  );
  const tpIds = Object.keys(tp);
  await writeFile(
    throughputChart,
    throughputSvg(
      tpIds.flatMap((id) => [
        { id, label: `${label(id)}: p99 ≤ ${results.settings.p99BoundMs} ms`, value: tp[id]?.sustainedRps ?? 0, capped: tp[id]?.capped === true },
        ...(tp[id]?.peak ? [{ id, label: `${label(id)}: peak`, value: tp[id]?.peak?.rps ?? 0, capped: false, faint: true }] : []),
      ]),
      `Sustained rate with p99 ≤ ${results.settings.p99BoundMs} ms (open loop), and peak (closed loop, ${results.settings.peakConcurrency} in flight)`,
    ),
  );

  const L: string[] = [];
  const rel = (file: string) => relative(repo, file);
  const llm = tp.llmroute?.sustainedRps;
  const bare = tp.bare?.sustainedRps;
  const unavailable = results.targets.filter((t) => t.unavailable);

  L.push('# Benchmarks');
  L.push('');
  L.push(`<!-- Generated by \`npm run bench\` from ${rel(resultsFile)}. Do not edit by hand: run the command again. -->`);
  L.push('');
  L.push(`Generated by \`${results.command}\` on ${results.date.slice(0, 16).replace('T', ' ')} UTC in ${fmt(results.durationS, 0)} s, from [\`${rel(resultsFile)}\`](${rel(resultsFile)}).${results.mode === 'quick' ? ' **This is a quick run** (shorter steps, fewer samples, one throughput round): use it for development, not for publishing.' : ''}`);
  L.push('');
  if ((results.foreignCpuPct ?? 0) > 15) {
    L.push(`> **Warning:** other processes on this machine (not part of the benchmark) used ${results.foreignCpuPct}% of one core on average while it measured (${results.machine.cores} cores in all). Absolute figures are lower and noisier than on an idle machine; the interleaving keeps the comparison between targets fair, but run it again on a quiet machine before publishing. Each throughput step below reports the foreign CPU during that step.`);
    L.push('');
  }
  L.push('Every target runs on this one machine, on loopback, in its own process, in front of the same fake provider (a separate Node process answering a fixed, realistic chat completion). Each measurement visits every target in turn, round after round, so that machine noise hits them all alike. The load generator, the fake provider and the target share the machine\'s cores: figures are comparable with each other, not with other machines.');
  L.push('');
  L.push('## How to run');
  L.push('');
  L.push('```sh');
  L.push('npm run bench                 # full run (~10 min): every figure below, controller at scale included');
  L.push('npm run bench -- --quick      # ~2 min, for development (no controller part)');
  L.push('npm run bench -- --no-competitors   # llmroute and the baselines only');
  L.push('npm run bench -- --profile    # also CPU-profile llmroute (automatic when it misses the throughput target)');
  L.push('npm run bench -- --report bench/results/<file>.json   # regenerate this file from a results file');
  L.push('npm run bench -- --quick --keep                       # keep the work directory: every target\'s log and config');
  L.push('npm run bench -- --profile-only --rate 1500           # only profile llmroute (fake provider + full config), print the summary');
  L.push('npm run bench -- --controller-only --routes 1000      # only the controller at scale, printed');
  L.push('```');
  L.push('');
  L.push('Portkey (`@portkey-ai/gateway`, npm) and LiteLLM (`litellm[proxy]`, PyPI, in a virtual environment) are installed on first use outside the repository, in `~/.cache/llmroute/bench/` (`LLMROUTE_BENCH_CACHE` overrides it), at pinned versions; later runs reuse them.');
  L.push('');
  L.push('## Machine and versions');
  L.push('');
  L.push('| | |');
  L.push('|---|---|');
  for (const [key, value] of Object.entries(results.machine)) L.push(`| ${key} | ${value} |`);
  L.push(`| Node.js | ${results.versions.node} |`);
  L.push(`| llmroute | ${results.versions.llmroute.version} (commit ${results.versions.llmroute.commit}${results.versions.llmroute.dirty ? ', with uncommitted changes in src/' : ''}) |`);
  if (results.versions.llmrouteRuntime) L.push(`| llmroute runs | ${results.versions.llmrouteRuntime} |`);
  L.push(`| undici | ${results.versions.undici} |`);
  if (results.foreignCpuPct !== undefined) L.push(`| other processes' CPU during the run | ${results.foreignCpuPct}% of one core on average |`);
  L.push(`| Portkey gateway | ${results.targets.find((t) => t.id === 'portkey')?.version ?? `not run (${results.versions.portkey} pinned)`} |`);
  L.push(`| LiteLLM | ${results.targets.find((t) => t.id === 'litellm')?.version ?? `not run (${results.versions.litellm} pinned)`}, Python ${results.versions.python ?? '?'} |`);
  L.push('');

  L.push('## Against the targets of issue #8');
  L.push('');
  L.push('| target | measured | verdict |');
  L.push('|---|---|---|');
  const llmAdded = lat.llmroute?.addedMs.p99;
  const llmMem = mem.llmroute?.sustainedLoadMB ?? mem.llmroute?.loadMB;
  L.push(`| throughput at the p99 ≤ ${results.settings.p99BoundMs} ms bound ≥ 70% of the bare proxy's | ${int(llm)} vs ${int(bare)} req/s = ${bare ? ((100 * (llm ?? 0)) / bare).toFixed(0) : '—'}% | ${verdict(llm !== undefined && bare ? llm >= 0.7 * bare : undefined)} |`);
  const llmPeak = tp.llmroute?.peak?.rps;
  const barePeak = tp.bare?.peak?.rps;
  if (llmPeak !== undefined && barePeak) L.push(`| the same at the peak (closed loop, ${results.settings.peakConcurrency} in flight; less sensitive to a shared machine) | ${int(llmPeak)} vs ${int(barePeak)} req/s = ${((100 * llmPeak) / barePeak).toFixed(0)}% | ${verdict(llmPeak >= 0.7 * barePeak)} |`);
  for (const [id, name] of [['portkey', 'Portkey'], ['litellm', 'LiteLLM']] as const) {
    const peer = tp[id];
    if (!peer) {
      L.push(`| ≥ 5× ${name}'s throughput | ${name} not measured | not measured |`);
      continue;
    }
    const peakNote = peer.peak && tp.llmroute?.peak ? `; peak (closed loop) ${int(tp.llmroute.peak.rps)} vs ${int(peer.peak.rps)} req/s = ${ratio(tp.llmroute.peak.rps, peer.peak.rps, 1)}` : '';
    if (peer.sustainedRps === 0) L.push(`| ≥ 5× ${name}'s throughput | ${int(llm)} req/s vs ${name}: ${sustained(peer)}${peakNote} | ${verdict(llm !== undefined && llm > 0)} |`);
    else L.push(`| ≥ 5× ${name}'s throughput | ${int(llm)} vs ${int(peer.sustainedRps)} req/s = ${ratio(llm, peer.sustainedRps, 1)}${peakNote} | ${verdict(llm !== undefined ? llm >= 5 * peer.sustainedRps : undefined)} |`);
  }
  L.push(`| added p99 latency at concurrency 1 < 1 ms | ${fmt(llmAdded, 3)} ms | ${verdict(llmAdded === undefined ? undefined : llmAdded < 1)} |`);
  L.push(`| gateway memory under load < 120 MB resident | ${fmt(llmMem, 1)} MB at the highest load it sustained within the p99 bound (${fmt(mem.llmroute?.loadMB, 1)} MB at most, overload and the closed loop included) | ${verdict(llmMem === undefined ? undefined : llmMem < 120)} |`);
  const c = results.controller;
  if (c?.done) {
    L.push(`| ${int(c.routes)} routes Ready within 60 s | ${c.allReadyS !== undefined ? `${fmt(c.allReadyS, 1)} s` : `${c.readyAtEnd} of ${c.routes} Ready after ${fmt(c.waitedS, 0)} s`} | ${verdict(c.readyWithin60s)} |`);
    L.push(`| controller < 300 MB resident | ${fmt(c.controllerRssPeakMB, 1)} MB peak | ${verdict(c.controllerRssPeakMB < 300)} |`);
  } else {
    L.push(`| 1,000 routes Ready within 60 s; controller < 300 MB | not measured: ${c?.reason ?? 'not run'} | not measured |`);
  }
  L.push('');

  if (unavailable.length) {
    L.push('## What could not be measured');
    L.push('');
    for (const t of unavailable) L.push(`- **${t.label}**: ${t.unavailable}`);
    L.push('');
  }

  L.push('## Targets');
  L.push('');
  L.push('| target | configuration | startup |');
  L.push('|---|---|---|');
  for (const t of results.targets) L.push(`| ${t.label}${t.version ? ` ${t.version}` : ''} | ${t.config} | ${t.startupMs !== undefined ? `${(t.startupMs / 1000).toFixed(1)} s` : '—'} |`);
  L.push('');

  L.push('## Ratios');
  L.push('');
  L.push('Throughput: higher is better, so a ratio above 1× favours llmroute. Added latency, memory and CPU per request: lower is better, so a ratio below 1× favours llmroute.');
  L.push('');
  const peers = ['bare', 'portkey', 'litellm'].filter((id) => tp[id] || lat[id]);
  L.push(`| llmroute / … | ${peers.map(label).join(' | ')} |`);
  L.push(`|---|${peers.map(() => '---').join('|')}|`);
  L.push(`| throughput at the p99 bound | ${peers.map((p) => (tp[p]?.sustainedRps === 0 ? 'peer sustains none' : ratio(llm, tp[p]?.sustainedRps))).join(' | ')} |`);
  L.push(`| peak throughput (closed loop) | ${peers.map((p) => ratio(tp.llmroute?.peak?.rps, tp[p]?.peak?.rps)).join(' | ')} |`);
  L.push(`| added latency p50 (c=1) | ${peers.map((p) => ratio(lat.llmroute?.addedMs.p50, lat[p]?.addedMs.p50)).join(' | ')} |`);
  L.push(`| added latency p99 (c=1) | ${peers.map((p) => ratio(lat.llmroute?.addedMs.p99, lat[p]?.addedMs.p99)).join(' | ')} |`);
  L.push(`| CPU per request (at the peak) | ${peers.map((p) => ratio(tp.llmroute?.peak?.cpuUsPerRequest, tp[p]?.peak?.cpuUsPerRequest)).join(' | ')} |`);
  L.push(`| resident memory under load (peak, any load) | ${peers.map((p) => ratio(mem.llmroute?.loadMB, mem[p]?.loadMB)).join(' | ')} |`);
  L.push(`| stream: added per-chunk delay p50 | ${peers.map((p) => ratio(results.streaming.llmroute?.addedMs.chunkP50, results.streaming[p]?.addedMs.chunkP50)).join(' | ')} |`);
  L.push('');

  L.push('## Latency at concurrency 1 (non-streaming)');
  L.push('');
  L.push(`One keep-alive connection per target, one request at a time; ${results.settings.latencyRounds} rounds of ${results.settings.latencyPerRound} requests per target, interleaved. "Added" is the target's percentile minus the direct call's.`);
  L.push('');
  L.push('| target | p50 ms | p90 ms | p99 ms | p99.9 ms | added p50 ms | added p99 ms | errors |');
  L.push('|---|---|---|---|---|---|---|---|');
  for (const id of latencyIds) {
    const r = lat[id];
    L.push(summaryRow(label(id), r?.summary, [fmt(r?.addedMs.p50, 3), fmt(r?.addedMs.p99, 3), `${r?.errors ?? '—'}${r?.firstError ? ` (${r.firstError.slice(0, 80)})` : ''}`]));
  }
  L.push('');
  L.push(`![Latency percentiles](${rel(latencyChart)})`);
  L.push('');

  L.push('### The cost of each llmroute feature');
  L.push('');
  L.push('| configuration | what is on | added p50 ms | added p99 ms | p50 over minimal ms | sustained req/s | peak req/s | CPU µs / request at the peak |');
  L.push('|---|---|---|---|---|---|---|---|');
  for (const id of ['llmroute-minimal', 'llmroute-auth', 'llmroute-budget', 'llmroute']) {
    const r = lat[id];
    if (!r) continue;
    const t = results.targets.find((x) => x.id === id);
    L.push(`| ${label(id)} | ${t?.config ?? ''} | ${fmt(r.addedMs.p50, 3)} | ${fmt(r.addedMs.p99, 3)} | ${fmt(r.summary.p50 - (lat['llmroute-minimal']?.summary.p50 ?? Number.NaN), 3)} | ${tp[id] ? sustained(tp[id]) : 'not measured'} | ${tp[id]?.peak ? int(tp[id]?.peak?.rps) : 'not measured'} | ${tp[id]?.peak ? int(tp[id]?.peak?.cpuUsPerRequest) : '—'} |`);
  }
  L.push('');

  L.push('## Streaming (concurrency 1)');
  L.push('');
  L.push(`The fake streams ${results.settings.streamChunks} content chunks ${results.settings.streamGapMs} ms apart and stamps each with the wall-clock time it wrote it; the client reads the stamp, so "chunk delay" is each chunk's one-way trip through the target (the direct call's is the floor). TTFB: first body byte; TTFT: first content chunk.`);
  L.push('');
  L.push('| target | streams (complete) | TTFB p50 ms | TTFB p99 ms | TTFT p50 ms | chunk delay p50 ms | chunk delay p99 ms | added TTFB p50 | added chunk p50 | added chunk p99 |');
  L.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const [id, s] of Object.entries(results.streaming)) {
    L.push(`| ${label(id)} | ${s.streams} (${s.complete}) | ${fmt(s.ttfbMs.p50, 3)} | ${fmt(s.ttfbMs.p99, 3)} | ${fmt(s.ttftMs.p50, 3)} | ${fmt(s.chunkDelayMs.p50, 3)} | ${fmt(s.chunkDelayMs.p99, 3)} | ${fmt(s.addedMs.ttfbP50, 3)} | ${fmt(s.addedMs.chunkP50, 3)} | ${fmt(s.addedMs.chunkP99, 3)} |`);
  }
  L.push('');

  L.push('## The fallback path (primary answers 503)');
  L.push('');
  L.push('Every request first goes to a provider that answers 503 (`overloaded`), then to the second provider. No retries of the failing provider, and nothing that skips it (llmroute\'s breaker threshold is raised, LiteLLM\'s cooldowns are off), so every request pays the whole path.');
  L.push('');
  L.push('| target | p50 ms | p90 ms | p99 ms | p99.9 ms | added over direct p50 / p99 ms | over its own normal path p50 / p99 ms | errors |');
  L.push('|---|---|---|---|---|---|---|---|');
  for (const [id, f] of Object.entries(results.fallback)) {
    L.push(summaryRow(label(id), f.summary, [`${fmt(f.addedOverDirectMs?.p50, 3)} / ${fmt(f.addedOverDirectMs?.p99, 3)}`, `${fmt(f.addedOverNormalPathMs?.p50, 3)} / ${fmt(f.addedOverNormalPathMs?.p99, 3)}`, `${f.errors}${f.firstError ? ` (${f.firstError.slice(0, 80)})` : ''}`]));
  }
  L.push('');

  L.push(`## Throughput at the p99 ≤ ${results.settings.p99BoundMs} ms bound`);
  L.push('');
  L.push(`Open-loop load (requests sent on schedule whatever the answers do; latency counted from each request's due time): rates double from ${results.settings.ladderStart} req/s up to ${int(results.settings.ladderMax)} until a step fails, then ${results.settings.bisections} bisections. A step is ${results.settings.warmupMs} ms of warm-up then ${results.settings.stepMs} ms measured; it passes with no error and p99 ≤ ${results.settings.p99BoundMs} ms; a failed step is measured once more and fails only if both attempts fail (so that one stall of the machine does not decide the figure). Steps alternate between targets; each target waits for the previous one's CPU to go quiet. ${results.settings.throughputRounds} round(s); the figure is the median over rounds (the lower of two).`);
  L.push('');
  L.push(`The peak is closed-loop instead: ${results.settings.peakConcurrency} requests always in flight for ${results.settings.stepMs} ms, latency ignored: the most a target answers per second on this machine.`);
  L.push('');
  L.push(`| target | sustained req/s (p99 ≤ ${results.settings.p99BoundMs} ms) | per round | peak req/s (closed loop) | p50 / p99 ms at peak | CPU µs / request at the peak | CPU µs / request at a rate all sustained (req/s) | peak RSS MB |`);
  L.push('|---|---|---|---|---|---|---|---|');
  for (const id of tpIds) {
    const t = tp[id];
    if (!t) continue;
    const peak = t.peak ? `${int(t.peak.rps)}${t.peak.errors ? ` (${t.peak.errors} errors)` : ''}` : '—';
    L.push(`| ${label(id)} | ${sustained(t)}${t.capped ? ' (ladder top)' : ''} | ${t.rounds.map((r) => int(r.sustainedRps)).join(', ')} | ${peak} | ${t.peak ? `${fmt(t.peak.p50Ms, 1)} / ${fmt(t.peak.p99Ms, 1)}` : '—'} | ${int(t.peak?.cpuUsPerRequest)} | ${t.cpuUsPerRequestAtCommonRate ? `${int(t.cpuUsPerRequestAtCommonRate.us)} (${int(t.cpuUsPerRequestAtCommonRate.rate)})` : '—'} | ${fmt(mem[id]?.loadMB, 1)} |`);
  }
  L.push('');
  L.push(`![Throughput](${rel(throughputChart)})`);
  L.push('');
  L.push('<details><summary>Every step</summary>');
  L.push('');
  L.push('| target | round | rate | pass | p50 ms | p99 ms | errors | target CPU % | fake CPU % | generator CPU % | other processes CPU % | send lag p99 ms |');
  L.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const id of tpIds) for (const s of tp[id]?.steps ?? []) L.push(`| ${label(id)} | ${s.round} | ${int(s.rate)}${(s.attempt ?? 1) > 1 ? ' (again)' : ''} | ${s.pass ? 'yes' : 'no'} | ${fmt(s.p50Ms, 2)} | ${fmt(s.p99Ms, 2)} | ${s.errors}${s.firstError ? ` (${s.firstError.slice(0, 60)})` : ''} | ${s.targetCpuPct} | ${s.fakeCpuPct} | ${s.generatorCpuPct} | ${s.foreignCpuPct ?? '—'} | ${fmt(s.sendLagP99Ms, 2)} |`);
  L.push('');
  L.push('</details>');
  L.push('');

  L.push('## Resident memory');
  L.push('');
  L.push('VmRSS from /proc, summed over the target\'s process tree: idle after warm-up; the peak during the open-loop steps it passed (sustained load); the peak during any step, failed (overloaded, requests queueing) and closed-loop ones included; and 2 s after the last one. CPU while idle: what the process burns with no request, measured over a few seconds after warm-up.');
  L.push('');
  L.push('| target | idle MB | under sustained load MB | under any load (peak) MB | after load MB | CPU while idle % |');
  L.push('|---|---|---|---|---|---|');
  for (const [id, m] of Object.entries(mem)) L.push(`| ${label(id)} | ${fmt(m.idleMB, 1)} | ${fmt(m.sustainedLoadMB, 1)} | ${fmt(m.loadMB, 1)} | ${fmt(m.afterLoadMB, 1)} | ${fmt(m.idleCpuPct, 1)} |`);
  L.push('');

  L.push('## Profile of llmroute\'s hot path');
  L.push('');
  const p = results.profile;
  if (!p) L.push('Not profiled in this run: llmroute met the throughput target (add `--profile` to profile anyway).');
  else if (p.error) L.push(`The profile failed: ${p.error}`);
  else {
    L.push(`${p.reason === 'missed' ? 'llmroute missed 70% of the bare proxy\'s throughput, so the run profiled it' : 'Profiled on request (`--profile`)'}: the full configuration in a fresh process under \`node --cpu-prof\`, at ${int(p.rate)} req/s for ${p.durationMs} ms (${int(p.requests)} requests, p99 ${fmt(p.p99Ms, 2)} ms, ${int(p.cpuUsPerRequest)} µs CPU per request under the profiler). Only the samples between the first and the last request handled count (start-up and shutdown are left out); locations are in the compiled JavaScript (\`src/…\`.js, lines close to the TypeScript's). Profile file: \`${p.file ?? '?'}\` (open it in Chrome DevTools or speedscope).`);
    L.push('');
    L.push('Self time by area (share of busy CPU time):');
    L.push('');
    L.push('| area | self ms | share |');
    L.push('|---|---|---|');
    for (const a of p.byArea) L.push(`| ${a.area} | ${fmt(a.selfMs, 1)} | ${fmt(a.selfPct, 1)}% |`);
    L.push('');
    L.push('Functions with the most self time:');
    L.push('');
    L.push('| function | where | self ms | share |');
    L.push('|---|---|---|---|');
    for (const e of p.topSelf) L.push(`| \`${e.name}\` | ${e.where} | ${fmt(e.selfMs, 1)} | ${fmt(e.selfPct, 1)}% |`);
    L.push('');
    L.push('llmroute\'s functions by inclusive time:');
    L.push('');
    L.push('| function | where | inclusive ms | share | self ms |');
    L.push('|---|---|---|---|---|');
    for (const e of p.topLlmrouteTotal) L.push(`| \`${e.name}\` | ${e.where} | ${fmt(e.totalMs, 1)} | ${fmt(e.totalPct, 1)}% | ${fmt(e.selfMs, 1)} |`);
  }
  L.push('');

  L.push('## The controller at scale');
  L.push('');
  if (!c || !c.done) L.push(`Not measured in this run: ${c?.reason ?? 'not run'}.`);
  else {
    L.push('Against the real API server harness (`startControlPlane` from `test/k8s/harness.ts`: etcd and kube-apiserver on loopback, the CRDs installed; kube-controller-manager left out), with the controller in its own process (`startController`, compiled, the CLI\'s defaults: 8 workers, no leader election; `--max-old-space-size=256`, the heap Node.js gives it under the chart\'s 384 MiB memory limit).');
    L.push('');
    L.push('| figure | value |');
    L.push('|---|---|');
    L.push(`| LLMRoutes applied at once | ${c.routes} (${c.environmentsPerRoute} environments each) |`);
    L.push(`| time until all are Ready | ${c.allReadyS !== undefined ? `${fmt(c.allReadyS, 1)} s` : `not reached: ${c.readyAtEnd} of ${c.routes} Ready when the wait ended after ${fmt(c.waitedS, 0)} s`} |`);
    if (c.progress.length) L.push(`| Ready over time | ${c.progress.map((p) => `${p.s} s: ${p.ready}`).join(', ')} |`);
    L.push(`| the controller quiet again (no more requests) | ${c.quietAfterS !== undefined ? `${fmt(c.quietAfterS, 1)} s after the first create` : 'not within the wait'} |`);
    L.push(`| controller resident memory, peak / after | ${fmt(c.controllerRssPeakMB, 1)} / ${fmt(c.controllerRssAfterMB, 1)} MB |`);
    L.push(`| requests to the API server | ${int(c.apiRequests)} (${fmt(c.apiRequestsPerRoute, 1)} per route): ${Object.entries(c.apiRequestsByVerb).map(([k, v]) => `${k} ${v}`).join(', ')} |`);
    L.push(`| one changed route → its ConfigMap applied | ${c.changeToConfigMapMs ? `p50 ${fmt(c.changeToConfigMapMs.p50, 0)} ms, p99 ${fmt(c.changeToConfigMapMs.p99, 0)} ms, max ${fmt(c.changeToConfigMapMs.max, 0)} ms (n = ${c.changeToConfigMapMs.n}, one change at a time)${c.changeToConfigMapMs.timeouts ? `; ${c.changeToConfigMapMs.timeouts} more not applied within ${(c.changeToConfigMapMs.timeoutMs ?? 0) / 1000} s` : ''}` : 'not measured (see below)'} |`);
    L.push(`| \`cdk8s synth\` of 100 routes | ${c.synth100RoutesS !== undefined ? `${fmt(c.synth100RoutesS, 1)} s` : `not measured${c.synthNote ? `: ${c.synthNote}` : ''}`} |`);
    for (const note of c.notes) L.push(`\n${note}`);
  }
  L.push('');

  L.push('## Notes on the competitors');
  L.push('');
  L.push(`- **Portkey**: \`@portkey-ai/gateway\` ${results.versions.portkey} declares \`@hono/node-server@^1.3.3\`, which npm resolves today to a 1.19 release; with it every streaming request through Portkey fails (\`TypeError: immutable\` in Portkey's \`updateHeaders\`, answered as a 500), because that release's lightweight Response keeps the upstream fetch response's immutable Headers. The benchmark pins \`@hono/node-server@${results.versions.portkeyHonoNodeServer ?? '?'}\` with an npm override in its cache directory; Portkey itself is unmodified. Portkey's open-source gateway has no client auth, budgets or rate limits, so it runs with none. Its OpenAI stream handler waits 25 ms before forwarding the first chunk (a \`setTimeout(25)\` in its stream transformer), which shows in its time to first byte.`);
  L.push('- **LiteLLM**: one uvicorn worker (the default), master-key auth, fallbacks, no retries, cooldowns off; its model cost map is the one the package ships (`LITELLM_LOCAL_MODEL_COST_MAP`, this machine reaches no other network). Budgets are not configured: LiteLLM enforces them only with its Postgres database.');
  L.push('');
  L.push('## Method notes');
  L.push('');
  L.push('- Requests are the same for every target: a system and a user message, `max_tokens: 128`, no `temperature` (so llmroute never coalesces them). The fake answers a 1.1 KB chat completion with usage.');
  L.push('- llmroute runs as production runs it: src/ compiled by `tsc` (into the cache directory, at the start of every run), plain `node`, `startGateway` with the production logger at `info` (one JSON line per request, to a file), metrics on, config and key files polled every 2 s. Its config is compiled from an LLMRoute by `compileEnvironment`, as the controller does. llmroute always asks the provider for a stream, even for a non-streaming request, and assembles the JSON answer itself; the fake answers such a stream at once (only the benchmark\'s own streaming requests are paced), so that llmroute pays for parsing 23 SSE events instead of one JSON body, but no more wall-clock time than the others.');
  L.push('- Requests at concurrency 1 and in the streaming and fallback measurements are sequential on one keep-alive connection per target; the open and closed loops use an undici Pool of up to 512 connections.');
  L.push('- The machine is shared: the load generator (this process), the fake provider and the target each want a core. The direct row of the throughput table is the ceiling that this harness can drive at all; a target near it is limited by the harness, not by itself.');
  L.push('- Added latency is a difference of percentiles measured in the same interleaved rounds, not a percentile of differences.');
  L.push('');
  await writeFile(join(repo, 'BENCHMARKS.md'), `${L.join('\n')}\n`);
}
