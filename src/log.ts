/** Structured logs: one JSON object per line, on stderr, for the controller and the gateway alike. */
export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Logger = (level: Level, message: string, fields?: Record<string, unknown>) => void;

const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
export const LEVELS = Object.keys(ORDER) as Level[];

export function createLogger(options: { level?: Level; base?: Record<string, unknown>; write?: (line: string) => void } = {}): Logger {
  const threshold = ORDER[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  return (level, message, fields) => {
    if (ORDER[level] < threshold) return;
    write(`${JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...options.base, ...fields })}\n`);
  };
}
