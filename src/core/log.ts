/**
 * Logging: one line per event on stderr, so that journald and test harnesses
 * read it as it comes. Hot paths do not log; they count into shared memory
 * instead.
 *
 * Three shapes of line (formatLine):
 * - text, `LEVEL component: message`, the default;
 * - json (LOG_FORMAT=json), one object a line for log shippers;
 * - either one behind a `<N>` syslog priority when stderr is the journal:
 *   systemd sets JOURNAL_STREAM to the device and inode of the stream it
 *   gave the service, and journald takes a leading `<N>` as the line's
 *   priority, so `journalctl -p warning` shows radiod's warnings and errors.
 *   The prefix is only written when stderr really is that stream: a shell
 *   started from the service, whose stderr is a terminal or a file, inherits
 *   JOURNAL_STREAM too.
 */
import { fstatSync } from 'node:fs';

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
/** syslog(3) priorities: LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR. */
export const PRIORITY: Record<Level, number> = { debug: 7, info: 6, warn: 4, error: 3 };

export interface LineStyle {
  format: LogFormat;
  /** Prefix each line with `<priority>` for journald. */
  journal: boolean;
}

/** One log line, newline included. `now` is for json's time field. */
export function formatLine(style: LineStyle, level: Level, component: string, msg: string, now: Date): string {
  const prefix = style.journal ? `<${PRIORITY[level]}>` : '';
  if (style.format === 'json') {
    return `${prefix}${JSON.stringify({ time: now.toISOString(), level, priority: PRIORITY[level], component, msg })}\n`;
  }
  // A message spanning lines (a child's stack trace) would read as several events without its level.
  return `${prefix}${level.toUpperCase()} ${component}: ${msg.replace(/\r?\n/g, ' | ')}\n`;
}

/** Whether JOURNAL_STREAM (`device:inode`) names the stream on descriptor `fd`. */
export function isJournalStream(value: string | undefined, fd = 2): boolean {
  const m = value === undefined ? null : /^(\d+):(\d+)$/.exec(value);
  if (!m) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]!) && st.ino === BigInt(m[2]!);
  } catch {
    return false;
  }
}

/** LOG_FORMAT as given, or text for anything else (the settings table refuses anything else first). */
export function logFormatOf(raw: string | undefined): LogFormat {
  return raw?.trim().toLowerCase() === 'json' ? 'json' : 'text';
}

let threshold = ORDER[(process.env.RADIOAI_LOG_LEVEL as Level | undefined) ?? 'info'] ?? ORDER.info;
const style: LineStyle = { format: logFormatOf(process.env.LOG_FORMAT), journal: isJournalStream(process.env.JOURNAL_STREAM) };

export function setLogLevel(level: Level): void {
  threshold = ORDER[level];
}

/** LOG_FORMAT from the settings (which may come from the settings file, not the environment); workers get it too. */
export function setLogFormat(format: LogFormat): void {
  style.format = format;
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
    process.stderr.write(formatLine(style, level, component, msg, new Date()));
  };
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
  };
}
