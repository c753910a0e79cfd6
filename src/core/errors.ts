/**
 * The error catalogue: every error radioai raises on purpose has a stable
 * `RADIOAI_ERR_*` code, a default message, radioctl's exit code for it and
 * radiod's when it stops radiod at start; docs/errors.md lists them for
 * operators (a unit test keeps the two in step, and checks that every code
 * is raised somewhere). Code branches on `.code` (hasCode, codeOf), never on
 * `instanceof` or message text: class identity does not survive
 * `postMessage`, and messages are for people.
 */

export interface ErrorSpec {
  readonly message: string;
  /** radioctl's exit code (docs/radioctl.md: 1 usage/input, 2 no such mount, 3 etcd unreachable). */
  readonly exit: number;
  /** radiod's exit code when the error stops it at start: 2 for what the settings say, 1 for the rest. */
  readonly radiod: number;
}

export const ERRORS = {
  RADIOAI_ERR_USAGE: { message: 'bad usage', exit: 1, radiod: 2 },
  RADIOAI_ERR_CONFIG: { message: 'invalid setting', exit: 1, radiod: 2 },
  RADIOAI_ERR_NO_DOMAIN: { message: 'DOMAIN not set', exit: 1, radiod: 2 },
  RADIOAI_ERR_MOUNT_PATH: { message: 'invalid mount path', exit: 1, radiod: 1 },
  RADIOAI_ERR_MOUNT_INVALID: { message: 'invalid mount settings', exit: 1, radiod: 1 },
  RADIOAI_ERR_MOUNT_EXISTS: { message: 'mount already exists', exit: 1, radiod: 1 },
  RADIOAI_ERR_NO_SUCH_MOUNT: { message: 'no such mount', exit: 2, radiod: 1 },
  RADIOAI_ERR_BACKUP_INVALID: { message: 'invalid backup file', exit: 1, radiod: 1 },
  RADIOAI_ERR_ETCD_UNREACHABLE: { message: 'etcd not reachable', exit: 3, radiod: 1 },
  RADIOAI_ERR_ETCD_TLS: { message: 'etcd TLS files unreadable', exit: 3, radiod: 1 },
  /** A host-name ETCD_SERVER found through DNS, without TLS and without ETCD_ALLOW_PLAINTEXT. */
  RADIOAI_ERR_ETCD_PLAINTEXT: { message: 'plain-text etcd refused', exit: 1, radiod: 1 },
  RADIOAI_ERR_CHILD_START: { message: 'child process could not start', exit: 1, radiod: 1 },
  RADIOAI_ERR_WORKER_EXIT: { message: 'worker thread exited', exit: 1, radiod: 1 },
  RADIOAI_ERR_BIND: { message: 'could not listen', exit: 1, radiod: 1 },
  RADIOAI_ERR_NODE_INVALID: { message: 'invalid node record', exit: 1, radiod: 1 },
  RADIOAI_ERR_UNSAFE_VALUE: { message: 'value refused for a generated configuration', exit: 1, radiod: 1 },
  RADIOAI_ERR_NAME_TAKEN: { message: 'node name held by another live node', exit: 1, radiod: 1 },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class RadioError extends Error {
  readonly code: ErrorCode;
  readonly exit: number;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    const spec = ERRORS[code];
    super(message ?? spec.message, options);
    this.name = 'RadioError';
    this.code = code;
    this.exit = spec.exit;
  }
}

/** True when `err` carries the given catalogue code (works across threads). */
export function hasCode(err: unknown, code: ErrorCode): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** The catalogue code `err` carries, or null (an error from elsewhere: a library, the system). */
export function codeOf(err: unknown): ErrorCode | null {
  const c = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof c === 'string' && Object.hasOwn(ERRORS, c) ? (c as ErrorCode) : null;
}

/** A one-line description of any thrown value, for logs and CLI output. */
export function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
