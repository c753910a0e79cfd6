/**
 * Logging: one line per event on stderr, `LEVEL component: message`, so that
 * journald and test harnesses can read it as it comes. Hot paths do not log;
 * they count into shared memory instead.
 */

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

let threshold = ORDER[(process.env.RADIOAI_LOG_LEVEL as Level | undefined) ?? 'info'] ?? ORDER.info;

export function setLogLevel(level: Level): void {
  threshold = ORDER[level];
}

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export function logger(component: string): Logger {
  const emit = (level: Level, msg: string): void => {
    if (ORDER[level] < threshold) return;
    process.stderr.write(`${level.toUpperCase()} ${component}: ${msg}\n`);
  };
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
  };
}
