/**
 * The certificate and key HTTPS_PORT serves, read by the main thread and
 * handed to the workers, which build their TLS contexts from them.
 *
 * They are read again on SIGHUP and whenever either file changes (stat
 * polling, which follows certbot's symlinks in /etc/letsencrypt/live and
 * sees a deploy hook's copy). A pair that does not load (the key written
 * before the certificate, a wrong key, a half-written file) is reported and
 * the pair in use stays: the next change tries again. New connections get
 * the new pair; connected listeners keep the session they have.
 */
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { EventEmitter } from 'node:events';
import { logger } from '../core/log.ts';

const log = logger('tls');

/** PEM text of a certificate chain and its private key. */
export interface TlsMaterial {
  cert: string;
  key: string;
}

/** How often the files are looked at: certbot renews days ahead, so seconds do not matter. */
const POLL_MS = 2000;

export type TlsRead = { kind: 'missing' } | { kind: 'bad'; why: string } | { kind: 'ok'; material: TlsMaterial };

/** Reads and checks the pair: missing when either file is absent, bad when they do not make a TLS context. */
export function readTls(certFile: string, keyFile: string): TlsRead {
  let cert: string;
  let key: string;
  try {
    cert = readFileSync(certFile, 'utf8');
    key = readFileSync(keyFile, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') return { kind: 'missing' };
    return { kind: 'bad', why: e.message };
  }
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    return { kind: 'bad', why: (err as Error).message };
  }
  return { kind: 'ok', material: { cert, key } };
}

export interface TlsFilesEvents {
  /** A new pair loaded (the first one included). */
  change: [material: TlsMaterial];
}

export class TlsFiles extends EventEmitter<TlsFilesEvents> {
  readonly #cert: string;
  readonly #key: string;
  #current: TlsMaterial | null = null;
  #watching = false;

  constructor(certFile: string, keyFile: string) {
    super();
    this.#cert = certFile;
    this.#key = keyFile;
  }

  /** The pair in use, or null while there is none. */
  get current(): TlsMaterial | null {
    return this.#current;
  }

  /** Reads the files once now, then whenever they change. */
  start(): void {
    this.reload('start');
    if (this.#watching) return;
    this.#watching = true;
    const changed = (): void => {
      this.reload('the files changed');
    };
    watchFile(this.#cert, { interval: POLL_MS, persistent: false }, changed);
    watchFile(this.#key, { interval: POLL_MS, persistent: false }, changed);
  }

  stop(): void {
    if (!this.#watching) return;
    this.#watching = false;
    unwatchFile(this.#cert);
    unwatchFile(this.#key);
  }

  /** Reads the pair again; emits `change` when it loads and differs from the one in use. Returns what it found. */
  reload(why: string): TlsRead['kind'] | 'same' {
    const r = readTls(this.#cert, this.#key);
    if (r.kind === 'missing') {
      if (this.#current) log.warn(`${this.#cert} or ${this.#key} is gone (${why}); HTTPS goes on with the certificate it has`);
      else if (why === 'start') log.info(`no certificate at ${this.#cert} and ${this.#key}: HTTPS off until they exist (TLS_CERT, TLS_KEY)`);
      return r.kind;
    }
    if (r.kind === 'bad') {
      log.error(`cannot use ${this.#cert} with ${this.#key} (${why}): ${r.why}; ${this.#current ? 'HTTPS goes on with the certificate it has' : 'HTTPS off'} until they are fixed`);
      return r.kind;
    }
    if (this.#current && this.#current.cert === r.material.cert && this.#current.key === r.material.key) return 'same';
    log.info(`${this.#current ? 'new certificate' : 'certificate'} from ${this.#cert} (${why}): HTTPS ${this.#current ? 'uses it for new connections' : 'on'}`);
    this.#current = r.material;
    this.emit('change', r.material);
    return 'ok';
  }
}
