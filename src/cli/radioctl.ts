/**
 * radioctl: manages mounts and shows the cluster, talking to etcd directly.
 * Exit codes (docs/radioctl.md): 0 done; 1 bad usage or invalid input; 2 no such
 * mount; 3 etcd not reachable within --timeout.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Etcd3 } from 'etcd3';
import { gatherRaw, parseArgs, resolveSettings, type ParsedArgs } from '../config/load-config.ts';
import { SETTINGS, type Config } from '../config/settings.ts';
import { ERRORS, RadioError, codeOf, describe } from '../core/errors.ts';
import { VERSION } from '../core/version.ts';
import { ClusterModel } from '../state/cluster-model.ts';
import { ANSWERS, ANSWER_TTL, QUERIES, type ListenersAnswer } from '../state/listener-query.ts';
import { connectEtcd, loadTls, withDeadline, type Tls } from '../state/etcd-client.ts';
import { diagnoseEtcd } from '../state/etcd-diagnose.ts';
import {
  checkMountPath, checkRelayUrl, checkTranscode, newPassword, newUsername, type MountRecord, type Transcode,
} from '../state/mount-record.ts';
import { backup, createMount, deleteMount, getMount, listMounts, restore, updateMount } from '../state/mount-store.ts';
import { clusterStatus, formatStatus } from './cluster-status.ts';
import { columns } from './columns.ts';

const ETCD_KEYS = ['etcdServer', 'resolver', 'etcdCa', 'etcdCert', 'etcdKey', 'embeddedEtcdPort', 'etcdAllowPlaintext'] as const;
const ETCD_SETTINGS = SETTINGS.filter((s) => (ETCD_KEYS as readonly string[]).includes(s.key));

/** The options every command takes, for help, the manual page and shell completion. */
export const GLOBAL_OPTIONS: readonly { flag: string; arg: string; help: string }[] = [
  { flag: '--etcd', arg: 'URLS', help: 'etcd client URLs, comma-separated (default: ETCD_SERVER from the environment or /etc/default/radioai, else http://127.0.0.1:2379)' },
  { flag: '--timeout', arg: 'SECONDS', help: 'give up on etcd after this long (default 5); exit 3' },
  { flag: '--json', arg: '', help: 'print JSON instead of text' },
  { flag: '--etcd-ca', arg: 'FILE', help: "CA certificate of etcd's TLS server, as radiod's ETCD_CA" },
  { flag: '--etcd-cert', arg: 'FILE', help: 'client certificate for etcd, as ETCD_CERT' },
  { flag: '--etcd-key', arg: 'FILE', help: 'its private key, as ETCD_KEY' },
  { flag: '--etcd-allow-plaintext', arg: '', help: 'speak plain text to a host-name ETCD_SERVER, as ETCD_ALLOW_PLAINTEXT' },
  { flag: '--config', arg: 'FILE', help: 'read settings from FILE instead of /etc/default/radioai' },
  { flag: '--version', arg: '', help: 'print the version and exit' },
];

/** The options of the commands besides the global ones, with the value each takes ('' for a switch). */
const COMMAND_OPTIONS = {
  '--relay': 'URL', '--no-relay': '', '--fallback': 'PATH', '--no-fallback': '', '--new-password': '',
  '--source': 'PATH', '--codec': 'mp3|vorbis|opus', '--bitrate': 'KBPS', '--samplerate': 'HZ', '--channels': '1|2', '--quality': 'Q',
} as const;
type CommandOption = keyof typeof COMMAND_OPTIONS;

interface CommandSpec {
  args: string;
  /** The options it accepts besides the global ones, in the order its usage shows them. */
  options: CommandOption[];
  /** Options it cannot do without. */
  required?: CommandOption[];
  summary: string;
}

/** Each command: its arguments, its options and what it does; usage, option checks, help, manual and completion come from here. */
const COMMAND_SPECS: Record<string, CommandSpec> = {
  'create-mount': {
    args: 'PATH', options: ['--relay', '--fallback'],
    summary: 'Creates a mount and prints its new source login. --relay pulls it from an external station instead; --fallback moves its listeners to another mount while it has no source.',
  },
  'create-transcoding-mount': {
    args: 'PATH', options: ['--source', '--codec', '--bitrate', '--samplerate', '--channels', '--quality', '--fallback'], required: ['--source'],
    summary: 'Creates a mount that one node in the cluster encodes from another mount with liquidsoap.',
  },
  'edit-mount': {
    args: 'PATH', options: ['--relay', '--no-relay', '--fallback', '--no-fallback', '--new-password'],
    summary: 'Changes a mount. --new-password prints the new login; the source connected with the old one is dropped.',
  },
  'delete-mount': { args: 'PATH', options: [], summary: 'Deletes a mount; its source and listeners are let go.' },
  'kick-source': {
    args: 'PATH', options: [],
    summary: "Drops the mount's live source on every node; its listeners move to the fallback where one is set. A source program that reconnects by itself is taken again.",
  },
  listeners: {
    args: 'PATH', options: [],
    summary: "Counts the mount's listeners on each node; with --json, each listener's node, address, user agent and seconds connected. The nodes answer through etcd within a couple of seconds.",
  },
  'list-mounts': { args: '', options: [], summary: 'Lists the mounts and what feeds each (a source, a relay, a transcoder).' },
  'show-mount': { args: 'PATH', options: [], summary: "Shows a mount's settings and its source login." },
  status: { args: '', options: [], summary: 'Shows the nodes (role, health, listeners, bandwidth) and the mounts (source, listeners, title).' },
  backup: { args: '[FILE]', options: [], summary: 'Writes every mount, logins included, as JSON to FILE (mode 0600) or stdout.' },
  restore: { args: '[FILE]', options: [], summary: 'Creates or replaces the mounts of a backup read from FILE or stdin.' },
  help: { args: '[COMMAND]', options: [], summary: 'Shows how to use radioctl, or one command. Needs no etcd.' },
};

/** Usage lines are wrapped at this width; lines after the first continue the command's arguments. */
const USAGE_WIDTH = 96;

/** A command's usage: `--x V | --no-x` where both exist, optional options in brackets, wrapped. */
function commandUsage(name: string, c: CommandSpec): string {
  const words = [name, ...(c.args ? [c.args] : [])];
  for (const o of c.options) {
    if (o.startsWith('--no-') && c.options.includes(`--${o.slice(5)}` as CommandOption)) continue;
    const value = COMMAND_OPTIONS[o];
    let text = value ? `${o} ${value}` : o;
    const negated = `--no-${o.slice(2)}` as CommandOption;
    if (c.options.includes(negated)) text += ` | ${negated}`;
    words.push(c.required?.includes(o) ? text : `[${text}]`);
  }
  const lines = [words[0]!];
  for (const w of words.slice(1)) {
    if (lines.at(-1)!.length + 1 + w.length > USAGE_WIDTH) lines.push(w);
    else lines[lines.length - 1] += ` ${w}`;
  }
  return lines.join('\n');
}

export const COMMANDS: Record<string, CommandSpec & { usage: string }> = Object.fromEntries(
  Object.entries(COMMAND_SPECS).map(([name, c]) => [name, { ...c, usage: commandUsage(name, c) }]),
);

const VALUE_FLAGS = ['--timeout', ...Object.entries(COMMAND_OPTIONS).filter(([, v]) => v !== '').map(([k]) => k)];
const SWITCHES = ['--json', ...Object.entries(COMMAND_OPTIONS).filter(([, v]) => v === '').map(([k]) => k)];

/** A command's usage after `lead`, its continuation lines lined up under its arguments. */
function usageLines(lead: string, name: string, usage: string): string {
  return `${lead}${usage.replace(/\n/g, `\n${' '.repeat(lead.length + name.length + 1)}`)}`;
}

/** `radioctl help COMMAND`: its usage, what it does, and the global options. */
export function commandHelp(name: string): string | null {
  const c = COMMANDS[name];
  if (!c) return null;
  return `${usageLines('usage: radioctl [OPTIONS] ', name, c.usage)}\n\n${c.summary}\n\noptions: --etcd URLS, --timeout SECONDS, --json (radioctl help)`;
}

export const USAGE = `usage: radioctl [--etcd URLS] [--timeout SECONDS] [--json] COMMAND [args]
       radioctl --version

commands:
${Object.entries(COMMANDS).map(([name, c]) => usageLines('  ', name, c.usage)).join('\n')}

--etcd defaults to ETCD_SERVER from the environment or /etc/default/radioai (--config FILE),
else http://127.0.0.1:2379; TLS as radiod (--etcd-ca, --etcd-cert, --etcd-key, --etcd-allow-plaintext).
Exit codes: 0 done, 1 bad usage or input, 2 no such mount,
3 etcd not reachable within the timeout.`;

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  readStdin: () => string;
  env: NodeJS.ProcessEnv;
  /** stdout is a terminal: tables in aligned columns rather than tab-separated. */
  tty?: boolean;
}

const usageError = (msg: string): never => {
  throw new RadioError('RADIOAI_ERR_USAGE', msg);
};

function intOption(args: ParsedArgs, flag: string): number | undefined {
  const v = args.flags.get(flag);
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) usageError(`${flag} takes a whole number, got "${v}"`);
  return Number(v);
}

function credentials(m: MountRecord, json: boolean): string {
  return json
    ? JSON.stringify({ path: m.path, username: m.username, password: m.password })
    : `username: ${m.username}\npassword: ${m.password}`;
}

function showMount(m: MountRecord): string {
  const lines = [`path: ${m.path}`, `username: ${m.username}`, `password: ${m.password}`, `relay: ${m.relay ?? '-'}`, `fallback: ${m.fallback ?? '-'}`];
  if (m.transcode) {
    const t = m.transcode;
    lines.push(`source: ${t.source}`, `codec: ${t.codec}`, `bitrate: ${t.bitrate}`, `samplerate: ${t.samplerate}`, `channels: ${t.channels}`, `quality: ${t.quality ?? '-'}`);
  }
  lines.push(`created: ${m.createdAt}`);
  return lines.join('\n');
}

function describeMount(m: MountRecord): [string, string] {
  if (m.transcode) return ['transcode', `${m.transcode.source} -> ${m.transcode.codec} ${m.transcode.bitrate} kbit/s`];
  if (m.relay) return ['relay', m.relay];
  return ['source', '-'];
}

async function run(command: string, args: ParsedArgs, client: Etcd3, io: Io): Promise<void> {
  const json = args.switches.has('--json');
  const [pathArg] = args.positional;
  const path = (): string => checkMountPath(pathArg ?? usageError(`${command} needs a mount PATH`));
  const fallback = args.flags.has('--fallback') ? checkMountPath(args.flags.get('--fallback')!) : null;
  switch (command) {
    case 'create-mount': {
      const m: MountRecord = {
        path: path(), username: newUsername(), password: newPassword(),
        relay: args.flags.has('--relay') ? checkRelayUrl(args.flags.get('--relay')!) : null,
        fallback, transcode: null, createdAt: new Date().toISOString(),
      };
      await createMount(client, m);
      io.out(credentials(m, json));
      return;
    }
    case 'create-transcoding-mount': {
      const p = path();
      const source = args.flags.get('--source')!; // required: checked with the command's options
      const quality = args.flags.get('--quality');
      if (quality !== undefined && !/^-?\d+(\.\d+)?$/.test(quality)) usageError(`--quality takes a number, got "${quality}"`);
      const transcode: Transcode = checkTranscode({
        source: checkMountPath(source),
        codec: args.flags.get('--codec') as Transcode['codec'] | undefined,
        bitrate: intOption(args, '--bitrate'),
        samplerate: intOption(args, '--samplerate'),
        channels: intOption(args, '--channels') as Transcode['channels'] | undefined,
        quality: quality === undefined ? null : Number(quality),
      }, p);
      const m: MountRecord = { path: p, username: newUsername(), password: newPassword(), relay: null, fallback, transcode, createdAt: new Date().toISOString() };
      await createMount(client, m);
      io.out(credentials(m, json));
      return;
    }
    case 'edit-mount': {
      const p = path();
      if (args.flags.has('--relay') && args.switches.has('--no-relay')) usageError('give --relay or --no-relay, not both');
      if (args.flags.has('--fallback') && args.switches.has('--no-fallback')) usageError('give --fallback or --no-fallback, not both');
      const relay = args.flags.has('--relay') ? checkRelayUrl(args.flags.get('--relay')!) : undefined;
      const m = await updateMount(client, p, (old) => ({
        ...old,
        relay: relay !== undefined ? relay : args.switches.has('--no-relay') ? null : old.relay,
        fallback: fallback !== null ? fallback : args.switches.has('--no-fallback') ? null : old.fallback,
        password: args.switches.has('--new-password') ? newPassword() : old.password,
      }));
      if (args.switches.has('--new-password')) io.out(credentials(m, json));
      else if (json) io.out(JSON.stringify(m));
      return;
    }
    case 'delete-mount':
      await deleteMount(client, path());
      return;
    case 'kick-source': {
      const p = path();
      const m = await updateMount(client, p, (old) => {
        if (old.relay !== null) throw new RadioError('RADIOAI_ERR_USAGE', `${p} is relayed from ${old.relay}: it has no source to kick`);
        return { ...old, kickedAt: new Date().toISOString() };
      });
      if (json) io.out(JSON.stringify({ path: m.path, kickedAt: m.kickedAt }));
      return;
    }
    case 'list-mounts': {
      const mounts = await listMounts(client);
      if (json) io.out(JSON.stringify(mounts.map(({ password: _p, username: _u, ...rest }) => rest)));
      else for (const line of columns(mounts.map((m) => [m.path, ...describeMount(m)]), io.tty === true)) io.out(line);
      return;
    }
    case 'listeners': {
      const p = (await getMount(client, path())).path;
      const answers = await askListeners(client, p);
      if (json) {
        const out = answers.flatMap((a) => a.sessions.map((x) => ({ node: a.node, address: x.address, userAgent: x.userAgent, seconds: Math.max(0, Math.round((a.at - x.since) / 1000)) })));
        io.out(JSON.stringify(out));
      } else {
        const rows = answers.map((a) => [a.node, a.sessions.length + a.more]);
        const total = rows.reduce((n, r) => n + Number(r[1]), 0);
        for (const line of columns([['NODE', 'LISTENERS'], ...rows, ['total', total]], io.tty === true)) io.out(line);
      }
      return;
    }
    case 'show-mount': {
      const m = await getMount(client, path());
      io.out(json ? JSON.stringify(m) : showMount(m));
      return;
    }
    case 'status': {
      const model = new ClusterModel(client);
      await model.readOnce();
      const s = clusterStatus(model);
      io.out(json ? JSON.stringify(s) : formatStatus(s, io.tty === true));
      return;
    }
    case 'backup': {
      const text = `${JSON.stringify(await backup(client), null, 2)}\n`;
      if (pathArg !== undefined && pathArg !== '-') writeFileSync(pathArg, text, { mode: 0o600 });
      else io.out(text.trimEnd());
      return;
    }
    case 'restore': {
      let text: string;
      try {
        text = pathArg !== undefined && pathArg !== '-' ? readFileSync(pathArg, 'utf8') : io.readStdin();
      } catch (err) {
        throw new RadioError('RADIOAI_ERR_BACKUP_INVALID', `cannot read ${pathArg}: ${(err as NodeJS.ErrnoException).code ?? describe(err)}`);
      }
      const n = await restore(client, text);
      io.out(json ? JSON.stringify({ restored: n }) : `restored ${n} mount${n === 1 ? '' : 's'}`);
      return;
    }
  }
}

/**
 * Puts the question for `path` on a lease of radioctl's own and waits until
 * every node alive then has answered, or ASK_MS; the answers, by node.
 */
async function askListeners(client: Etcd3, path: string): Promise<ListenersAnswer[]> {
  const model = new ClusterModel(client);
  await model.readOnce();
  const nodes = new Set(model.nodes.keys());
  const id = randomBytes(9).toString('base64url');
  const lease = client.lease(ANSWER_TTL, { autoKeepAlive: false });
  await lease.put(`${QUERIES}${id}`).value(JSON.stringify({ path }));
  const deadline = Date.now() + ASK_MS;
  let answers: ListenersAnswer[] = [];
  try {
    for (;;) {
      const kvs = await client.getAll().prefix(`${ANSWERS}${id}/`).strings();
      answers = Object.values(kvs).map((v) => JSON.parse(v) as ListenersAnswer).filter((a) => typeof a.node === 'string' && Array.isArray(a.sessions));
      if ([...nodes].every((n) => answers.some((a) => a.node === n)) || Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await lease.revoke().catch(() => undefined);
  }
  return answers.sort((a, b) => a.node.localeCompare(b.node));
}

/** How long radioctl listeners waits for every node's answer. */
const ASK_MS = 3000;

/** Runs radioctl with `argv`; returns the exit code. */
export async function radioctl(argv: readonly string[], io: Io): Promise<number> {
  let client: Etcd3 | null = null;
  let endpoints: string[] = [];
  let settings: Config | null = null;
  let timeoutMs = 5000;
  try {
    // Like radiod and every other tool: the version, with no etcd and no command needed.
    if (argv.includes('--version')) {
      io.out(`radioctl ${VERSION}`);
      return 0;
    }
    const args = parseArgs(argv, { valueFlags: VALUE_FLAGS, switchFlags: SWITCHES, settings: ETCD_SETTINGS });
    if (args.switches.has('--help') || argv.length === 0) {
      io.out(USAGE);
      return argv.length === 0 ? 1 : 0;
    }
    const [command, ...rest] = args.positional;
    args.positional = rest;
    if (command === 'help') {
      if (rest.length > 1) return usageError(`unexpected argument "${rest[1]}"`);
      if (rest[0] === undefined) {
        io.out(USAGE);
        return 0;
      }
      const text = commandHelp(rest[0]);
      if (text === null) return usageError(`unknown command "${rest[0]}"; radioctl help lists them`);
      io.out(text);
      return 0;
    }
    const spec = command !== undefined ? COMMANDS[command] : undefined;
    if (!spec) return usageError(command === undefined ? 'no command given' : `unknown command "${command}"`);
    for (const f of [...args.flags.keys()].filter((k) => k.startsWith('--')).concat([...args.switches])) {
      if (!['--timeout', '--json', '--help', '--version'].includes(f) && !(spec.options as string[]).includes(f)) usageError(`${command} does not take ${f}`);
    }
    for (const o of spec.required ?? []) if (!args.flags.has(o)) usageError(`${command} needs ${o} ${COMMAND_OPTIONS[o]}`);
    const maxArgs = spec.args === '' ? 0 : 1;
    if (rest.length > maxArgs) usageError(`unexpected argument "${rest[maxArgs]}"`);
    const timeoutRaw = args.flags.get('--timeout') ?? '5';
    if (!/^\d+(\.\d+)?$/.test(timeoutRaw) || Number(timeoutRaw) <= 0) usageError(`--timeout takes a number of seconds, got "${timeoutRaw}"`);
    timeoutMs = Number(timeoutRaw) * 1000;

    settings = await resolveSettings(ETCD_SETTINGS, gatherRaw(args, io.env, ETCD_SETTINGS)) as Config;
    const conn = await withDeadline(connectEtcd(settings, { dialTimeout: timeoutMs }), timeoutMs, 'connect');
    client = conn.client;
    endpoints = conn.endpoints;
    await withDeadline(run(command!, args, client, io), timeoutMs, `${command} via ${conn.endpoints.join(',')}`);
    return 0;
  } catch (err) {
    const known = codeOf(err);
    const code = known !== null ? ERRORS[known].exit : isEtcdConnectionError(err) ? 3 : 1;
    let why = code === 3 && known === null ? `etcd not reachable at ${endpoints.join(',')}: ${shortReason(err)}` : describe(err);
    if (code === 3 && settings && endpoints[0] !== undefined) {
      // The gRPC error says "unavailable" for every TLS mistake; say which one it is.
      const reason = await diagnoseEtcd(endpoints[0], settings, loadTlsQuietly(settings), Math.min(2000, timeoutMs)).catch(() => null);
      if (reason) why = `etcd not reachable at ${endpoints.join(',')}: ${reason}`;
    }
    io.err(`radioctl: ${why}`);
    return code;
  } finally {
    client?.close();
  }
}

/** The useful part of a gRPC connection error ("connection refused"), not its whole trace. */
function shortReason(err: unknown): string {
  const m = /(ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|certificate[^.]*|handshake[^.]*)/i.exec(describe(err));
  if (!m) return describe(err).split('. ')[0]!;
  return { ECONNREFUSED: 'connection refused', ETIMEDOUT: 'timed out', EHOSTUNREACH: 'host unreachable', ENOTFOUND: 'host not found' }[m[1]!.toUpperCase()] ?? m[1]!;
}

function loadTlsQuietly(s: Config): Tls | null {
  try {
    return loadTls(s);
  } catch {
    return null;
  }
}

function isEtcdConnectionError(err: unknown): boolean {
  const name = (err as { name?: string } | null)?.name ?? '';
  return /GRPC(Unavailable|DeadlineExceeded|Connect)|ClientRuntime/.test(name) || /ECONNREFUSED|UNAVAILABLE|No connection established/i.test(describe(err));
}
