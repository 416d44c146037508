/** Structured logs: one JSON object per line, on stderr, for the controller and the gateway alike. */
export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Logger = (level: Level, message: string, fields?: Record<string, unknown>) => void;

const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
export const LEVELS = Object.keys(ORDER) as Level[];

/** Pending log text above which it is written at once rather than at the end of the event loop's turn. */
const FLUSH_BYTES = 64 * 1024;

/**
 * Gathers lines and writes them once per turn of the event loop. A busy gateway logs a line per request, and each
 * write to stderr is a system call (a synchronous one for files and pipes): one write for all the lines of a turn
 * costs a fraction of that. Lines still pending when the process exits are written then (stderr writes to files and
 * pipes are synchronous, so they are not lost to `process.exit`).
 */
export function batchedWriter(write: (text: string) => void): (line: string) => void {
  let pending: string[] = [];
  let bytes = 0;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    bytes = 0;
    write(text);
  };
  process.on('exit', flush);
  return (line) => {
    pending.push(line);
    bytes += line.length;
    if (bytes >= FLUSH_BYTES) flush();
    else if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
}

let stderrWriter: ((line: string) => void) | undefined;

export function createLogger(options: { level?: Level; base?: Record<string, unknown>; write?: (line: string) => void } = {}): Logger {
  const threshold = ORDER[options.level ?? 'info'];
  // One batch for every logger of the process, so that lines stay in the order they were logged.
  const write = options.write ?? (stderrWriter ??= batchedWriter((text) => process.stderr.write(text)));
  return (level, message, fields) => {
    if (ORDER[level] < threshold) return;
    write(`${JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...options.base, ...fields })}\n`);
  };
}
