/**
 * Connects to etcd as docs/configuration.md describes: `ETCD_SERVER` is empty (the
 * embedded member on 127.0.0.1), a list of client URLs, or a host name whose
 * addresses are members on port 2379. When the CA file exists the connection
 * uses TLS, with the client certificate and key when those exist too.
 *
 * A host name found through DNS is not spoken to in plain text unless the
 * operator says so (ETCD_ALLOW_PLAINTEXT): whoever can forge an answer for
 * it would receive every mount's password and could write the cluster's
 * state. An explicit http:// URL or an IP address is the operator's own
 * choice of where to go and is taken as written.
 */
import { existsSync, readFileSync } from 'node:fs';
import { Resolver, lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Etcd3, type IOptions } from 'etcd3';
import { RadioError, describe } from '../core/errors.ts';
import { hostPort } from '../core/host-port.ts';

export interface EtcdSettings {
  etcdServer: string;
  etcdCa: string;
  etcdCert: string;
  etcdKey: string;
  embeddedEtcdPort: number;
  /** DNS servers for a host-name etcdServer; empty: the system's resolver. */
  resolver?: string[];
  /** Plain HTTP to a host-name etcdServer is refused unless this is set. */
  etcdAllowPlaintext?: boolean;
}

/**
 * Why a connection to `server` must not be made, or null when it may: a
 * bare host name (not an IP address, not a URL, not `localhost`, which
 * never goes to DNS) reached without TLS, unless allowed.
 */
export function plaintextRefusal(server: string, tls: boolean, allowPlaintext: boolean, caFile: string): string | null {
  if (tls || allowPlaintext) return null;
  const first = server.split(',').map((x) => x.trim()).find(Boolean);
  if (first === undefined || /^https?:\/\//.test(first)) return null;
  const host = /^[^:]+:\d+$/.test(first) ? first.split(':')[0]! : first;
  if (isIP(host) !== 0 || /(^|\.)localhost\.?$/i.test(host)) return null;
  return `ETCD_SERVER ${first} is a host name found through DNS, and without TLS anyone who can answer for it would get every mount's password: `
    + `put the etcd CA certificate at ETCD_CA (${caFile}, not found) and the client certificate and key at ETCD_CERT and ETCD_KEY, `
    + 'or set ETCD_ALLOW_PLAINTEXT=true (--etcd-allow-plaintext) to accept plain text';
}

export interface Tls {
  rootCertificate: Buffer;
  certChain?: Buffer;
  privateKey?: Buffer;
}

/** Reads the TLS files that exist; null when there is no CA file (plain HTTP). */
export function loadTls(s: EtcdSettings): Tls | null {
  if (!existsSync(s.etcdCa)) return null;
  try {
    const tls: Tls = { rootCertificate: readFileSync(s.etcdCa) };
    if (existsSync(s.etcdCert) && existsSync(s.etcdKey)) {
      tls.certChain = readFileSync(s.etcdCert);
      tls.privateKey = readFileSync(s.etcdKey);
    }
    return tls;
  } catch (err) {
    throw new RadioError('RADIOAI_ERR_ETCD_TLS', `etcd TLS files: ${describe(err)}`, { cause: err });
  }
}

/** The client URLs to use, resolving a host name to its addresses. */
export async function etcdEndpoints(s: EtcdSettings, tls: boolean): Promise<string[]> {
  const scheme = tls ? 'https' : 'http';
  const v = s.etcdServer.trim();
  if (v === '') return [`${scheme}://127.0.0.1:${s.embeddedEtcdPort}`];
  const items = v.split(',').map((x) => x.trim()).filter(Boolean);
  if (items.every((i) => /^https?:\/\//.test(i))) return items;
  const [host, port] = /^[^:]+:\d+$/.test(items[0]!) ? items[0]!.split(':') as [string, string] : [items[0]!, '2379'];
  if (isIP(host) !== 0) return [`${scheme}://${hostPort(host, Number(port))}`];
  const refused = plaintextRefusal(v, tls, s.etcdAllowPlaintext ?? false, s.etcdCa);
  if (refused !== null) throw new RadioError('RADIOAI_ERR_ETCD_PLAINTEXT', refused);
  const via = s.resolver && s.resolver.length > 0 ? ` (asking ${s.resolver.join(', ')})` : '';
  let addresses: string[];
  try {
    addresses = await resolveHost(host, s.resolver ?? []);
  } catch (err) {
    throw new RadioError('RADIOAI_ERR_ETCD_UNREACHABLE', `etcd host name ${host} does not resolve${via}: ${describe(err)}`, { cause: err });
  }
  if (addresses.length === 0) throw new RadioError('RADIOAI_ERR_ETCD_UNREACHABLE', `etcd host name ${host} has no addresses${via}`);
  return addresses.map((a) => `${scheme}://${hostPort(a, Number(port))}`);
}

/**
 * The addresses of a host name: from the system (which also reads
 * /etc/hosts), or from the given DNS servers, such as a radioai node's own
 * DNS for `etcd.DOMAIN` before the zone is delegated.
 */
async function resolveHost(host: string, servers: string[]): Promise<string[]> {
  if (servers.length === 0) return [...new Set((await lookup(host, { all: true })).map((a) => a.address))];
  const r = new Resolver({ timeout: 2000, tries: 2 });
  r.setServers(servers);
  const settled = await Promise.allSettled([r.resolve4(host), r.resolve6(host)]);
  const found = settled.flatMap((x) => (x.status === 'fulfilled' ? x.value : []));
  if (found.length === 0 && settled[0].status === 'rejected') throw settled[0].reason;
  return found;
}

export async function connectEtcd(s: EtcdSettings, extra: Partial<IOptions> = {}): Promise<{ client: Etcd3; endpoints: string[] }> {
  const tls = loadTls(s);
  const endpoints = await etcdEndpoints(s, tls !== null);
  const options: IOptions = {
    hosts: endpoints,
    dialTimeout: 3000,
    ...(tls ? { credentials: tls } : {}),
    ...extra,
  };
  return { client: new Etcd3(options), endpoints };
}

/** Rejects with RADIOAI_ERR_ETCD_UNREACHABLE when `p` takes longer than `ms`. */
export async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RadioError('RADIOAI_ERR_ETCD_UNREACHABLE', `etcd not reachable within ${ms / 1000} s (${what})`)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
