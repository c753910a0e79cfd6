/**
 * The @radioai/conn-peek addon (native/conn-peek): watch an accepted
 * connection's descriptor, read its first bytes without consuming them
 * (MSG_PEEK), and hand the descriptor to another owner. Without the addon
 * (not built, or RADIOAI_FRONT=door) load() returns null and the front door
 * serves every connection through the Icecast-compatible door.
 */
import { createRequire } from 'node:module';
import { loadAddon, type Loaded } from '../core/native-addon.ts';

export interface ConnPeek {
  /** Duplicates `fd` and calls `onReadable` once when bytes (or the end) can be read. */
  watch: (fd: number, onReadable: () => void) => object;
  /** Copies the waiting bytes into `into` without consuming them: their count, 0 at the end, or -errno. */
  peek: (handle: object, into: Uint8Array) => number;
  /** Waits for readability again (after a peek found nothing). */
  poll: (handle: object) => void;
  /** Stops watching and returns the duplicate descriptor: the caller owns it. */
  release: (handle: object) => number;
  /** Stops watching and closes the duplicate. */
  close: (handle: object) => void;
  /** Closes the sockets uWS leaves open when the calling thread ends (see the addon's comment). */
  guardTeardown: () => void;
}

let loaded: Loaded<ConnPeek> | undefined;

export function loadConnPeek(): ConnPeek | null {
  return (loaded ??= loadAddon<ConnPeek>('@radioai/conn-peek', 'RADIOAI_FRONT', 'door')).addon;
}

/** Why loadConnPeek() returned null, for the log. */
export function connPeekUnavailable(): string {
  return loaded?.why ?? '';
}

/**
 * Lets the calling worker thread end at any moment (a crash, the
 * watchdog's terminate()) without Node aborting the process over uWS's open
 * sockets. Loaded even when RADIOAI_FRONT=door, since uWS apps exist then too.
 */
export function guardThreadTeardown(): boolean {
  try {
    (createRequire(import.meta.url)('@radioai/conn-peek') as ConnPeek).guardTeardown();
    return true;
  } catch {
    return false;
  }
}
