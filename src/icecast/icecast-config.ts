/**
 * Renders the local Icecast's configuration from the cluster state. Every
 * node's Icecast can take a source on every mount with the mount's own
 * credentials, whatever its role, so that a node elected master takes the
 * sources carried to it at once, on a configuration reload rather than a
 * restart. The roles differ only in their relays: on the master, relay
 * mounts are pulled from their external upstream; on the standby (the
 * node next in line to be master) there are no relays at all, so that
 * every mount is free for a source the moment it is elected (an Icecast
 * 2.4 lets go of a relay one to two seconds after the reload that removes
 * it, and refuses the mount's sources until then); on every other node each
 * mount is a permanent (not on-demand) relay of the master's mount, so a
 * listener on any node gets the stream. Fallbacks are wired on all three.
 *
 * Every value is checked for its kind first (safe-values.ts) and then
 * escaped by xml.ts. A mount with a value that fails is left out (and said,
 * once); a master address that fails leaves the relays out, as while no
 * master is known; radiod's own settings that fail stop the render.
 */
import { describe } from '../core/errors.ts';
import { logger } from '../core/log.ts';
import type { MountRecord } from '../state/mount-record.ts';
import {
  safeCredential, safeFilePath, safeHost, safeInteger, safeIp, safeMountPath, safePort, safeRelayCredential, safeUrlPath,
} from './safe-values.ts';
import type { IcecastRole } from './icecast-role.ts';
import { el, x } from './xml.ts';

const log = logger('icecast');

/**
 * Icecast 2.5 takes a listen(2) backlog per socket (1-128; Icecast 2.4 has a
 * fixed 5 and ignores the element). A full backlog makes new connections
 * wait for SYN retries, seconds each.
 */
export const LISTEN_BACKLOG = 128;

/** Reasons already logged: a refused value is reported once, not at every render (bounded: forgotten past 1000). */
const said = new Set<string>();

function logOnce(why: string): void {
  if (said.has(why)) return;
  if (said.size >= 1000) said.clear();
  said.add(why);
  log.error(why);
}

export interface IcecastConfigInput {
  /** The standby (the master's successor) relays nothing: its mounts are free for the sources of a failover. */
  role: IcecastRole;
  bindAddrs: string[];
  port: number;
  hostname: string;
  adminPassword: string;
  /** Global source and relay passwords: random and never handed out; mounts have their own. */
  sourcePassword: string;
  mounts: readonly MountRecord[];
  /** The master's Icecast, for relay nodes; null while no master is known. */
  master: { host: string; port: number } | null;
  /**
   * Per-mount counters that change a relay's upstream URL (`?radioai-retry=N`,
   * which Icecast ignores when it looks up the mount). Icecast restarts a
   * relay at once when its configuration changes, instead of waiting out its
   * retry delay after a failure (about 10 s).
   */
  relayRetry?: ReadonlyMap<string, number>;
  limits: { clients: number; queueSize: number; burstSize: number };
  logDir: string;
  /**
   * The file of addresses allowed to connect (allow-list.ts), or null for
   * none. Icecast re-reads it by itself when its modification time changes.
   */
  allowFile?: string | null;
  /**
   * Only when radiod is root and Icecast's port is below 1024: Icecast then
   * starts as root to bind it and changes to this user itself (Icecast 2.4
   * refuses to run as root without it). Otherwise radiod starts Icecast as
   * the unprivileged user directly (icecast-manager.ts) and this is null.
   */
  changeOwner: { user: string; group: string } | null;
}

/** Splits a relay URL into Icecast's <relay> fields, each whitelisted. */
export function relayFields(url: string): { server: string; port: number; mount: string; username?: string; password?: string } {
  const u = new URL(url);
  const port = u.port !== '' ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
  const f: { server: string; port: number; mount: string; username?: string; password?: string } = {
    server: safeHost(u.hostname.replace(/^\[|\]$/g, ''), 'relay host'),
    port: safePort(port, 'relay port'),
    mount: safeUrlPath(`${u.pathname}${u.search}` || '/', 'relay path'),
  };
  if (u.username !== '') f.username = safeRelayCredential(decodeURIComponent(u.username), 'relay user name');
  if (u.password !== '') f.password = safeRelayCredential(decodeURIComponent(u.password), 'relay password');
  return f;
}

interface CheckedMount {
  path: string;
  username: string;
  password: string;
  fallback: string | null;
  relay: ReturnType<typeof relayFields> | null;
}

/** A mount's values through their whitelists; throws RADIOAI_ERR_UNSAFE_VALUE (or a URL error) on the first that fails. */
function checkMount(m: MountRecord, role: IcecastConfigInput['role']): CheckedMount {
  const path = safeMountPath(m.path);
  return {
    path,
    username: safeCredential(m.username, 'user name'),
    password: safeCredential(m.password, 'password'),
    fallback: m.fallback === null ? null : safeMountPath(m.fallback, 'fallback'),
    relay: role === 'master' && m.relay !== null ? relayFields(m.relay) : null,
  };
}

function relay(server: string, port: number, mount: string, localMount: string, auth?: { username?: string; password?: string }): string {
  return [
    '  <relay>',
    `    ${el('server', server)}${el('port', port)}`,
    `    ${el('mount', mount)}${el('local-mount', localMount)}`,
    auth?.username !== undefined ? `    ${el('username', auth.username)}${el('password', auth.password ?? '')}` : null,
    `    ${el('on-demand', 0)}${el('relay-shoutcast-metadata', 1)}`,
    '  </relay>',
  ].filter((l) => l !== null).join('\n');
}

/**
 * The configuration text. `refused` hears why a mount or the master's
 * address was left out (by default logged once per reason).
 */
export function renderIcecastConfig(c: IcecastConfigInput, refused: (why: string) => void = logOnce): string {
  // radiod's own settings: validated when read, so a failure here is a bug and stops the render.
  const hostname = safeHost(c.hostname, 'hostname');
  const bindAddrs = c.bindAddrs.map((a) => safeIp(a, 'bind address'));
  const port = safePort(c.port);
  const adminPassword = safeCredential(c.adminPassword, 'admin password');
  const sourcePassword = safeCredential(c.sourcePassword, 'source password');
  const clients = safeInteger(c.limits.clients, 1, 10_000_000, 'client limit');
  const queueSize = safeInteger(c.limits.queueSize, 1, 1 << 30, 'queue size');
  const burstSize = safeInteger(c.limits.burstSize, 0, 1 << 30, 'burst size');
  const logDir = safeFilePath(c.logDir, 'log directory');
  const allowFile = c.allowFile == null ? null : safeFilePath(c.allowFile, 'allow-list file');
  const mounts: CheckedMount[] = [];
  for (const m of c.mounts) {
    try {
      mounts.push(checkMount(m, c.role));
    } catch (err) {
      refused(`mount ${JSON.stringify(String(m.path).slice(0, 80))} left out of the Icecast configuration: ${describe(err)}`);
    }
  }
  let master: { host: string; port: number } | null = null;
  if (c.master !== null) {
    try {
      master = { host: safeHost(c.master.host, "master's address"), port: safePort(c.master.port, "master's port") };
    } catch (err) {
      refused(`no relays of the master: ${describe(err)}`);
    }
  }
  const out: string[] = [];
  out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push('<!-- Generated by radiod; changes are overwritten. -->');
  out.push('<icecast>');
  out.push(`  ${el('location', 'radioai')}${el('admin', 'radioai')}`);
  out.push(`  ${el('hostname', hostname)}`);
  out.push('  <limits>');
  out.push(`    ${el('clients', clients)}${el('sources', Math.max(10, mounts.length * 2 + 10))}`);
  out.push(`    ${el('queue-size', queueSize)}${el('burst-size', burstSize)}${el('burst-on-connect', burstSize > 0 ? 1 : 0)}`);
  out.push(`    ${el('client-timeout', 30)}${el('header-timeout', 15)}${el('source-timeout', 10)}`);
  out.push('  </limits>');
  out.push('  <authentication>');
  out.push(`    ${el('source-password', sourcePassword)}${el('relay-password', sourcePassword)}`);
  out.push(`    ${el('admin-user', 'admin')}${el('admin-password', adminPassword)}`);
  out.push('  </authentication>');
  for (const addr of bindAddrs) {
    out.push(`  <listen-socket>${el('port', port)}${el('bind-address', addr)}${el('listen-backlog', LISTEN_BACKLOG)}</listen-socket>`);
  }
  // Relay nodes re-check the master's relays often so that a source that
  // connects (or a master that changes) is picked up within seconds.
  out.push(`  ${el('master-update-interval', 5)}`);
  for (const m of mounts) {
    out.push('  <mount type="normal">');
    out.push(`    ${el('mount-name', m.path)}`);
    out.push(`    ${el('username', m.username)}${el('password', m.password)}`);
    if (m.fallback !== null) out.push(`    ${el('fallback-mount', m.fallback)}${el('fallback-override', 1)}`);
    out.push('  </mount>');
  }
  for (const m of mounts) {
    if (c.role === 'master') {
      if (m.relay !== null) out.push(relay(m.relay.server, m.relay.port, m.relay.mount, m.path, m.relay));
    } else if (c.role === 'relay' && master !== null) {
      const retry = c.relayRetry?.get(m.path) ?? 0;
      out.push(relay(master.host, master.port, retry > 0 ? `${m.path}?radioai-retry=${safeInteger(retry, 0, Number.MAX_SAFE_INTEGER, 'relay retry')}` : m.path, m.path));
    }
  }
  out.push(`  ${el('fileserve', 1)}`);
  out.push('  <paths>');
  out.push(`    ${el('basedir', '/usr/share/icecast2')}${el('logdir', logDir)}`);
  out.push(`    ${el('webroot', '/usr/share/icecast2/web')}${el('adminroot', '/usr/share/icecast2/admin')}`);
  // Only the cluster's addresses may connect (read by Icecast at the first connection, then re-read when the file changes).
  if (allowFile !== null) out.push(`    ${el('allow-ip', allowFile)}`);
  out.push('  </paths>');
  // "-" sends the logs to Icecast's stderr, which radiod reads line by line.
  out.push(`  <logging>${el('accesslog', 'access.log')}${el('errorlog', '-')}${el('loglevel', 2)}${el('logsize', 10000)}${el('logarchive', 0)}</logging>`);
  out.push('  <security>');
  out.push(`    ${el('chroot', 0)}`);
  if (c.changeOwner) out.push(`    <changeowner>${el('user', c.changeOwner.user)}${el('group', c.changeOwner.group)}</changeowner>`);
  out.push('  </security>');
  out.push('</icecast>');
  return `${out.join('\n')}\n`;
}

export { x as escapeXml };
