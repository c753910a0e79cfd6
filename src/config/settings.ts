/**
 * radiod's settings, declared once: flag, variable/file key, default, and the
 * parser that validates a raw string. docs/configuration.md's table is generated from it; the names are fixed; the order
 * of precedence is flag > environment > config file > default.
 */
import { availableParallelism, hostname } from 'node:os';
import { isIP } from 'node:net';
import { RadioError, type ErrorCode } from '../core/errors.ts';

export interface Config {
  domain: string;
  nodeName: string;
  publicIps: string[];
  bindAddrs: string[];
  httpPort: number;
  dnsPort: number;
  icecastPort: number;
  /** Listeners, playlists and the status page over TLS, while TLS_CERT and TLS_KEY exist. */
  httpsPort: number;
  /** PEM certificate chain (certbot's fullchain.pem). */
  tlsCert: string;
  /** PEM private key (certbot's privkey.pem). */
  tlsKey: string;
  etcdServer: string;
  etcdCa: string;
  etcdCert: string;
  etcdKey: string;
  embeddedEtcdPort: number;
  dataDir: string;
  nameservers: string[];
  icecastProxy: boolean;
  /** Outbound bits per second this node may serve; 0 = unlimited. */
  bandwidthLimit: number;
  /** 0 = unlimited. */
  maxListeners: number;
  workers: number;
  /** host:port, or '' to disable. */
  statsd: string;
  /** Where /metrics is served for Prometheus (host:port), or empty. */
  metricsAddr: string;
  /** The listener log's file, `-` for stderr, or empty for none. */
  accessLog: string;
  /** Proxies whose X-Forwarded-For is believed (addresses and CIDR prefixes). */
  trustedProxies: string[];
  /** radiod's own log lines: `text` or `json`. */
  logFormat: 'text' | 'json';
  /** DNS servers (IP or IP:port) that resolve a host-name ETCD_SERVER; empty: the system's resolver. */
  resolver: string[];
  /** Seconds before a silent node is dropped. */
  leaseTtl: number;
  /** TTL of node records in DNS answers, seconds. */
  dnsTtl: number;
  /** At most this many A (or AAAA) records per DNS answer. */
  dnsMaxRecords: number;
  /** UDP responses per second per client prefix; 0 disables rate limiting. */
  dnsRrl: number;
  /** Port of the node's own Icecast server, behind the Icecast-compatible door. */
  icecastInternalPort: number;
  /** Icecast <clients> limit: listeners plus sources and relays. */
  icecastClients: number;
  /** Icecast <queue-size>, bytes a listener may fall behind before it is dropped. */
  icecastQueueSize: number;
  /** Icecast <burst-size>, bytes sent at once to a new listener. */
  icecastBurstSize: number;
  /** Shared snapshot capacity: mount slots. */
  snapshotMounts: number;
  /** Shared snapshot capacity: node slots. */
  snapshotNodes: number;
  /** Shared snapshot capacity: bytes for names, paths and addresses. */
  snapshotBytes: number;
  /** Wrong source logins from one address before it is locked out; 0 turns slowing and lockout off. */
  sourceAuthFailures: number;
  /** Seconds a source lockout lasts (and failures are remembered). */
  sourceAuthLockout: number;
  /** Speak plain text to a host-name ETCD_SERVER found through DNS (refused unless set). */
  etcdAllowPlaintext: boolean;
  /** Addresses besides the cluster's nodes and loopback that may connect to the node's own Icecast; null: anyone. */
  icecastAllow: string[] | null;
  /** Open connections per public port at most, for the whole node, listeners included. */
  maxConnections: number;
  /** New connections per second per client address (IPv6: /64) on the public ports; 0: no limit. */
  clientConnRate: number;
  /** Connections per client address not yet admitted (head not read, or not yet a stream or a source); 0: no limit. */
  clientPending: number;
}

type Parser<T> = (raw: string) => T;

export interface SettingSpec<K extends keyof Config = keyof Config> {
  readonly key: K;
  readonly flag: string;
  readonly env: string;
  /** A literal default, or a function that computes it from the settings parsed so far. */
  readonly default: string | ((c: Partial<Config>) => string | undefined);
  readonly parse: Parser<Config[K]>;
  readonly help: string;
  readonly isBoolean?: boolean;
  /** How a computed default is described to operators (the commented settings file). */
  readonly defaultText?: string;
  /** Found at start-up when not given, before the default (PUBLIC_IP: what `hostname -f` resolves to); names where from. */
  readonly discover?: string;
  /** Without a value or default: refused with this code and text. */
  readonly required?: { code: ErrorCode; text: string };
  /** Without a value or default: this value, meaning none (no statsd, an embedded etcd), not parsed. */
  readonly empty?: Config[K];
}

class Invalid extends Error {}
const fail = (why: string): never => {
  throw new Invalid(why);
};

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

export function isDnsLabel(s: string): boolean {
  return LABEL.test(s);
}

export function isDomainName(s: string): boolean {
  const name = s.endsWith('.') ? s.slice(0, -1) : s;
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every(isDnsLabel);
}

function integer(min: number, max: number): Parser<number> {
  return (raw) => {
    if (!/^\d+$/.test(raw.trim())) fail(`expected a whole number from ${min} to ${max}, got "${raw}"`);
    const n = Number(raw.trim());
    if (n < min || n > max) fail(`expected a whole number from ${min} to ${max}, got ${n}`);
    return n;
  };
}

const port = integer(1, 65535);

function list(raw: string): string[] {
  return raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

function ipList(raw: string): string[] {
  const ips = list(raw);
  if (ips.length === 0) fail('expected at least one IP address');
  for (const ip of ips) if (isIP(ip) === 0) fail(`"${ip}" is not an IPv4 or IPv6 address`);
  return ips;
}

function boolean(raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  return fail(`expected true or false, got "${raw}"`);
}

/** Bits per second, with an optional k/M/G suffix (powers of 1000, as link speeds are quoted). */
function bitsPerSecond(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgG]?)$/.exec(raw.trim());
  if (!m) return fail(`expected bits per second such as 100000000 or 100M, got "${raw}"`);
  const scale = { '': 1, k: 1e3, m: 1e6, g: 1e9 }[m[2]!.toLowerCase()]!;
  return Math.round(Number(m[1]) * scale);
}

/** host:port (a bracketed IPv6 address for a host), or empty for none. */
function hostPortOrEmpty(raw: string): string {
  const v = raw.trim();
  if (v === '') return '';
  const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d+)$/.exec(v);
  if (!m) return fail(`expected host:port or empty, got "${raw}"`);
  port(m[2]!);
  return v;
}

function domain(raw: string): string {
  const v = raw.trim().toLowerCase().replace(/\.$/, '');
  if (!isDomainName(v)) fail(`"${raw}" is not a DNS domain name`);
  return v;
}

function label(raw: string): string {
  const v = raw.trim().toLowerCase();
  if (!isDnsLabel(v)) fail(`"${raw}" is not a DNS label (letters, digits and inner hyphens, at most 63)`);
  return v;
}

function nameList(raw: string): string[] {
  const names = list(raw).map((n) => n.toLowerCase().replace(/\.$/, ''));
  if (names.length === 0) fail('expected at least one name');
  for (const n of names) if (!isDomainName(n)) fail(`"${n}" is not a DNS name`);
  return names;
}

function etcdServer(raw: string): string {
  const v = raw.trim();
  for (const item of list(v)) {
    if (/^https?:\/\//.test(item)) {
      try {
        new URL(item);
      } catch {
        fail(`"${item}" is not a URL`);
      }
    } else if (list(v).length > 1 || !(isDomainName(item) || isIP(item) !== 0 || /^[^:]+:\d+$/.test(item))) {
      fail(`"${item}" is neither an http(s) URL nor a host name`);
    }
  }
  return v;
}

/** DNS servers as `IP`, `IP:port` or `[IPv6]:port`, comma-separated; empty for the system's resolver. */
function resolverList(raw: string): string[] {
  const out = list(raw);
  for (const item of out) {
    const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(item) ?? /^([0-9.]+):(\d+)$/.exec(item);
    if (m) {
      if (isIP(m[1]!) === 0) fail(`"${m[1]}" is not an IP address`);
      port(m[2]!);
    } else if (isIP(item) === 0) {
      fail(`"${item}" is not an IP address or IP:port`);
    }
  }
  return out;
}

/** The listener log: an absolute path, `-` for stderr, or empty for none. */
function logFile(raw: string): string {
  const v = raw.trim();
  if (v === '' || v === '-') return v;
  return path(v);
}

function logFormat(raw: string): 'text' | 'json' {
  const v = raw.trim().toLowerCase();
  if (v !== 'text' && v !== 'json') fail(`expected text or json, got "${raw}"`);
  return v as 'text' | 'json';
}

/** Addresses and CIDR prefixes (IPv4 or IPv6), comma-separated; empty for none. */
function prefixList(raw: string): string[] {
  const out = list(raw);
  for (const item of out) {
    const [addr, bits, extra] = item.split('/');
    const v = isIP(addr ?? '');
    if (v === 0 || extra !== undefined) fail(`"${item}" is not an address or a prefix such as 10.0.0.0/8`);
    if (bits !== undefined && (!/^\d+$/.test(bits) || Number(bits) > (v === 4 ? 32 : 128))) fail(`"${item}": the prefix length must be 0-${v === 4 ? 32 : 128}`);
  }
  return out;
}

function path(raw: string): string {
  const v = raw.trim();
  if (!v.startsWith('/')) fail(`expected an absolute path, got "${raw}"`);
  return v;
}

/** The short host name, lower-cased: the default node name. */
export function shortHostname(): string {
  return hostname().split('.')[0]!.toLowerCase();
}

export const SETTINGS: readonly SettingSpec[] = [
  { key: 'domain', flag: '--domain', env: 'DOMAIN', default: '', parse: domain, help: "the cluster's DNS zone, e.g. radio.example.com (required)", required: { code: 'RADIOAI_ERR_NO_DOMAIN', text: 'required, e.g. --domain radio.example.com' } },
  { key: 'nodeName', flag: '--name', env: 'NODE_NAME', default: shortHostname, parse: label, help: "this node's name, a DNS label", defaultText: 'the short host name' },
  {
    key: 'publicIps', flag: '--public-ip', env: 'PUBLIC_IP', default: '', parse: ipList, help: 'comma-separated addresses advertised for this node',
    defaultText: 'the addresses `hostname -f` resolves to', discover: 'hostname -f',
    required: { code: 'RADIOAI_ERR_CONFIG', text: 'the host name does not resolve; set the addresses to advertise' },
  },
  { key: 'bindAddrs', flag: '--bind', env: 'BIND_ADDR', default: (c) => c.publicIps?.join(','), parse: ipList, help: 'where the HTTP, DNS and Icecast-compatible ports listen', defaultText: 'PUBLIC_IP' },
  { key: 'httpPort', flag: '--http-port', env: 'HTTP_PORT', default: '80', parse: port, help: 'redirector / proxy port' },
  { key: 'dnsPort', flag: '--dns-port', env: 'DNS_PORT', default: '53', parse: port, help: 'DNS port (UDP and TCP)' },
  { key: 'icecastPort', flag: '--icecast-port', env: 'ICECAST_PORT', default: '8000', parse: port, help: 'Icecast-compatible port' },
  { key: 'httpsPort', flag: '--https-port', env: 'HTTPS_PORT', default: '443', parse: port, help: 'HTTPS port for listeners, playlists and the status page; served while TLS_CERT and TLS_KEY exist' },
  { key: 'tlsCert', flag: '--tls-cert', env: 'TLS_CERT', default: '/etc/radioai/tls/fullchain.pem', parse: path, help: 'PEM certificate chain for HTTPS_PORT (such as certbot\'s fullchain.pem); read again on SIGHUP and when it changes' },
  { key: 'tlsKey', flag: '--tls-key', env: 'TLS_KEY', default: '/etc/radioai/tls/privkey.pem', parse: path, help: 'PEM private key for HTTPS_PORT (such as certbot\'s privkey.pem), readable by the radioai user' },
  { key: 'etcdServer', flag: '--etcd', env: 'ETCD_SERVER', default: '', parse: etcdServer, help: 'etcd client URLs, or a host name; empty starts an embedded etcd', defaultText: 'empty: an embedded etcd on 127.0.0.1', empty: '' },
  { key: 'resolver', flag: '--resolver', env: 'RESOLVER', default: '', parse: resolverList, help: "DNS servers (IP or IP:port) that look up a host-name ETCD_SERVER; empty: the system's", defaultText: "empty: the system's resolver", empty: [] },
  { key: 'etcdCa', flag: '--etcd-ca', env: 'ETCD_CA', default: '/etc/radioai/etcd_ca.pem', parse: path, help: 'CA certificate for etcd (used when present)' },
  { key: 'etcdCert', flag: '--etcd-cert', env: 'ETCD_CERT', default: '/etc/radioai/etcd_client.pem', parse: path, help: 'client certificate for etcd (used when present)' },
  { key: 'etcdKey', flag: '--etcd-key', env: 'ETCD_KEY', default: '/etc/radioai/etcd_client.key', parse: path, help: 'client key for etcd (used when present)' },
  { key: 'embeddedEtcdPort', flag: '--embedded-etcd-port', env: 'EMBEDDED_ETCD_PORT', default: '2379', parse: integer(1, 65534), help: 'client port of the embedded etcd (peer port is this + 1)' },
  { key: 'dataDir', flag: '--data-dir', env: 'DATA_DIR', default: '/var/lib/radioai', parse: path, help: 'embedded etcd data and generated files' },
  { key: 'nameservers', flag: '--nameservers', env: 'NAMESERVERS', default: (c) => c.nodeName, parse: nameList, help: 'names served as NS records', defaultText: 'NODE_NAME' },
  { key: 'icecastProxy', flag: '--enable-icecast-proxy', env: 'ICECAST_PROXY', default: 'true', parse: boolean, help: 'true: stream to listeners; false: redirect them', isBoolean: true },
  { key: 'bandwidthLimit', flag: '--bandwidth-limit', env: 'BANDWIDTH_LIMIT', default: '0', parse: bitsPerSecond, help: 'outbound bits per second this node may serve (0: none)' },
  { key: 'maxListeners', flag: '--max-listeners', env: 'MAX_LISTENERS', default: '0', parse: integer(0, 10_000_000), help: 'listeners this node may serve (0: none)' },
  { key: 'workers', flag: '--workers', env: 'WORKERS', default: () => String(availableParallelism()), parse: integer(1, 256), help: 'worker threads', defaultText: 'the number of CPUs' },
  { key: 'statsd', flag: '--statsd', env: 'STATSD', default: 'localhost:8125', parse: hostPortOrEmpty, help: 'statsd host:port; empty disables', empty: '' },
  { key: 'accessLog', flag: '--access-log', env: 'ACCESS_LOG', default: (c) => `${c.dataDir ?? '/var/lib/radioai'}/access.log`, defaultText: 'DATA_DIR/access.log', parse: logFile, help: 'the listener log (one line per finished listener request, combined format); - for stderr; empty disables; reopened on SIGHUP' },
  { key: 'trustedProxies', flag: '--trusted-proxies', env: 'TRUSTED_PROXIES', default: '', parse: prefixList, help: "comma-separated addresses and prefixes of reverse proxies whose X-Forwarded-For names the listener's address in the listener log" },
  { key: 'logFormat', flag: '--log-format', env: 'LOG_FORMAT', default: 'text', parse: logFormat, help: "radiod's log lines on stderr: text (LEVEL component: message) or json (one object a line); under systemd both carry the syslog priority" },
  { key: 'metricsAddr', flag: '--metrics-addr', env: 'METRICS_ADDR', default: '127.0.0.1:9108', parse: hostPortOrEmpty, help: 'address:port of the Prometheus /metrics endpoint; empty disables' },
  { key: 'leaseTtl', flag: '--lease-ttl', env: 'LEASE_TTL', default: '5', parse: integer(2, 3600), help: 'seconds before a silent node is dropped' },
  { key: 'dnsTtl', flag: '--dns-ttl', env: 'DNS_TTL', default: '5', parse: integer(1, 86_400), help: 'TTL of node records in DNS answers, seconds' },
  { key: 'dnsMaxRecords', flag: '--dns-max-records', env: 'DNS_MAX_RECORDS', default: '8', parse: integer(1, 64), help: 'A or AAAA records per DNS answer at most' },
  { key: 'dnsRrl', flag: '--dns-rrl', env: 'DNS_RRL', default: '50', parse: integer(0, 1_000_000), help: 'UDP DNS responses per second per client prefix (0: no limit)' },
  { key: 'icecastInternalPort', flag: '--icecast-internal-port', env: 'ICECAST_INTERNAL_PORT', default: (c) => (c.icecastPort !== undefined && c.icecastPort < 65535 ? String(c.icecastPort + 1) : '8001'), parse: port, help: "the node's own Icecast, behind the door (default ICECAST_PORT + 1)", defaultText: 'ICECAST_PORT + 1' },
  { key: 'icecastClients', flag: '--icecast-clients', env: 'ICECAST_CLIENTS', default: '20000', parse: integer(10, 1_000_000), help: "the local Icecast's client limit" },
  { key: 'icecastQueueSize', flag: '--icecast-queue-size', env: 'ICECAST_QUEUE_SIZE', default: '524288', parse: integer(65536, 64 << 20), help: 'bytes a listener may lag before Icecast drops it' },
  { key: 'icecastBurstSize', flag: '--icecast-burst-size', env: 'ICECAST_BURST_SIZE', default: '65536', parse: integer(0, 8 << 20), help: 'bytes Icecast sends at once to a new listener' },
  { key: 'snapshotMounts', flag: '--snapshot-mounts', env: 'SNAPSHOT_MOUNTS', default: '1024', parse: integer(1, 1_000_000), help: 'mount slots in the shared snapshot' },
  { key: 'snapshotNodes', flag: '--snapshot-nodes', env: 'SNAPSHOT_NODES', default: '64', parse: integer(1, 4096), help: 'node slots in the shared snapshot' },
  { key: 'snapshotBytes', flag: '--snapshot-bytes', env: 'SNAPSHOT_BYTES', default: '1048576', parse: integer(4096, 1 << 30), help: 'bytes for names, paths and addresses in the shared snapshot' },
  { key: 'sourceAuthFailures', flag: '--source-auth-failures', env: 'SOURCE_AUTH_FAILURES', default: '10', parse: integer(0, 1_000_000), help: 'wrong source logins from one address before it is refused for SOURCE_AUTH_LOCKOUT (0: no limit)' },
  { key: 'sourceAuthLockout', flag: '--source-auth-lockout', env: 'SOURCE_AUTH_LOCKOUT', default: '60', parse: integer(1, 86_400), help: 'seconds an address is refused after too many wrong source logins' },
  { key: 'etcdAllowPlaintext', flag: '--etcd-allow-plaintext', env: 'ETCD_ALLOW_PLAINTEXT', default: 'false', parse: boolean, help: 'allow plain HTTP to a host-name ETCD_SERVER found through DNS (refused by default)', isBoolean: true },
  { key: 'icecastAllow', flag: '--icecast-allow', env: 'ICECAST_ALLOW', default: '', parse: allowList, help: "comma-separated addresses besides the cluster's nodes and loopback that may connect to ICECAST_INTERNAL_PORT; any: no restriction" },
  {
    key: 'maxConnections', flag: '--max-connections', env: 'MAX_CONNECTIONS',
    // Listeners are the product: room for the most this node is told to serve on one port, and as many again for short
    // requests; never under 40000, since listeners through the front-end do not use Icecast's client slots.
    default: (c) => String(2 * Math.max(c.maxListeners ?? 0, c.icecastClients ?? 0, 20_000)),
    parse: integer(16, 100_000_000), help: 'open connections per public port at most, listeners included', defaultText: '2 × the largest of MAX_LISTENERS, ICECAST_CLIENTS and 20000',
  },
  { key: 'clientConnRate', flag: '--client-conn-rate', env: 'CLIENT_CONN_RATE', default: '100', parse: integer(0, 1_000_000), help: 'new connections per second per client address on the public ports, bursts of 10 s worth allowed (0: no limit)' },
  { key: 'clientPending', flag: '--client-pending', env: 'CLIENT_PENDING', default: '1024', parse: integer(0, 1_000_000), help: 'connections per client address whose request is not yet read, or not yet a stream or a source (0: no limit)' },
];

/** ICECAST_ALLOW: IP addresses, or "any" for no allow-list at all. */
function allowList(raw: string): string[] | null {
  if (raw.trim().toLowerCase() === 'any') return null;
  const ips = list(raw);
  for (const ip of ips) if (isIP(ip) === 0) fail(`"${ip}" is not an IPv4 or IPv6 address (or give "any")`);
  return ips;
}

export function parseSetting(spec: SettingSpec, raw: string, origin: string): Config[keyof Config] {
  try {
    return spec.parse(raw);
  } catch (err) {
    if (err instanceof Invalid) {
      throw new RadioError('RADIOAI_ERR_CONFIG', `${spec.env} (${spec.flag}, from ${origin}): ${err.message}`);
    }
    throw err;
  }
}
