/**
 * The listener log, the main thread's half: the workers hand over the lines
 * of finished listener requests once a second, formatted
 * (proxy/access-line.ts), and they are appended here as they come. The file is
 * opened for appending and opened again on SIGHUP (after logrotate moved
 * it); if the disk cannot keep up, lines beyond a bound are dropped and
 * counted rather than held in memory.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { describe } from '../core/errors.ts';
import { logger } from '../core/log.ts';

const log = logger('access-log');

/** Bytes waiting for the disk beyond which new lines are dropped. */
export const MAX_BUFFERED = 8 * 1024 * 1024;

export class AccessLog {
  readonly #target: string;
  #out: WriteStream | null = null;
  #failed = false;
  /** Lines lost: the disk could not keep up, or a worker's batch was full. */
  dropped = 0;
  written = 0;

  /** `target` is a file, or `-` for stderr. */
  constructor(target: string) {
    this.#target = target;
    this.#open();
  }

  #open(): void {
    if (this.#target === '-') return;
    const out = createWriteStream(this.#target, { flags: 'a', mode: 0o640 });
    out.on('open', () => {
      if (this.#failed) log.info(`writing ${this.#target} again`);
      this.#failed = false;
    });
    out.on('error', (err) => {
      if (!this.#failed) log.error(`cannot write the listener log ${this.#target}: ${describe(err)}; lines are dropped until SIGHUP opens it again`);
      this.#failed = true;
      if (this.#out === out) this.#out = null;
    });
    this.#out = out;
  }

  /** Appends `count` whole lines (`lines`, each ending in a newline); `dropped` were lost in a worker. */
  write(lines: string, count: number, dropped = 0): void {
    this.dropped += dropped;
    if (count === 0) return;
    const out = this.#target === '-' ? process.stderr : this.#out;
    if (out === null || out.writableLength > MAX_BUFFERED) {
      this.dropped += count;
      return;
    }
    out.write(lines);
    this.written += count;
  }

  /** Opens the file again (SIGHUP, after logrotate moved it away). */
  reopen(): void {
    if (this.#target === '-') return;
    this.#out?.end();
    this.#open();
  }

  close(): Promise<void> {
    const out = this.#out;
    this.#out = null;
    return new Promise((resolve) => (out ? out.end(resolve) : resolve()));
  }
}
