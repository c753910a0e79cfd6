/**
 * The error catalogue: every error radioai raises on purpose has a stable
 * `RADIOAI_ERR_*` code, a default message, and where it applies the CLI exit
 * code and HTTP status it maps to. Code branches on `.code`, never on
 * `instanceof`, because class identity does not survive `postMessage`.
 */

export interface ErrorSpec {
  readonly message: string;
  /** radioctl exit code (docs/radioctl.md: 1 usage/input, 2 no such mount, 3 etcd unreachable). */
  readonly exit: number;
  /** HTTP status when the error reaches a client. */
  readonly status: number;
}

export const ERRORS = {
  RADIOAI_ERR_USAGE: { message: 'bad usage', exit: 1, status: 400 },
  RADIOAI_ERR_CONFIG: { message: 'invalid setting', exit: 1, status: 500 },
  RADIOAI_ERR_MOUNT_PATH: { message: 'invalid mount path', exit: 1, status: 400 },
  RADIOAI_ERR_MOUNT_INVALID: { message: 'invalid mount settings', exit: 1, status: 400 },
  RADIOAI_ERR_MOUNT_EXISTS: { message: 'mount already exists', exit: 1, status: 409 },
  RADIOAI_ERR_NO_SUCH_MOUNT: { message: 'no such mount', exit: 2, status: 404 },
  RADIOAI_ERR_BACKUP_INVALID: { message: 'invalid backup file', exit: 1, status: 400 },
  RADIOAI_ERR_ETCD_UNREACHABLE: { message: 'etcd not reachable', exit: 3, status: 503 },
  RADIOAI_ERR_ETCD_TLS: { message: 'etcd TLS files unreadable', exit: 3, status: 500 },
  /** A host-name ETCD_SERVER found through DNS, without TLS and without ETCD_ALLOW_PLAINTEXT. */
  RADIOAI_ERR_ETCD_PLAINTEXT: { message: 'plain-text etcd refused', exit: 1, status: 500 },
  RADIOAI_ERR_SNAPSHOT_FULL: { message: 'shared snapshot capacity exceeded', exit: 1, status: 500 },
  RADIOAI_ERR_CHILD_EXIT: { message: 'child process exited', exit: 1, status: 500 },
  RADIOAI_ERR_CHILD_START: { message: 'child process could not start', exit: 1, status: 500 },
  RADIOAI_ERR_WORKER_EXIT: { message: 'worker thread exited', exit: 1, status: 500 },
  RADIOAI_ERR_BIND: { message: 'could not listen', exit: 1, status: 500 },
  RADIOAI_ERR_BAD_MESSAGE: { message: 'malformed thread message', exit: 1, status: 500 },
  RADIOAI_ERR_NODE_INVALID: { message: 'invalid node record', exit: 1, status: 500 },
  RADIOAI_ERR_UNSAFE_VALUE: { message: 'value refused for a generated configuration', exit: 1, status: 500 },
  RADIOAI_ERR_NAME_TAKEN: { message: 'node name held by another live node', exit: 1, status: 500 },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class RadioError extends Error {
  readonly code: ErrorCode;
  readonly exit: number;
  readonly status: number;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    const spec = ERRORS[code];
    super(message ?? spec.message, options);
    this.name = 'RadioError';
    this.code = code;
    this.exit = spec.exit;
    this.status = spec.status;
  }
}

/** True when `err` carries the given catalogue code (works across threads). */
export function hasCode(err: unknown, code: ErrorCode): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** A one-line description of any thrown value, for logs and CLI output. */
export function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
