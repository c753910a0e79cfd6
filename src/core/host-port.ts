/**
 * Host and port as they appear in URLs and in `radioctl status`: an IPv6
 * address goes in brackets (RFC 3986), anything else as it is.
 */

export function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** Whether two endpoints are the same host and port (whatever else they carry, such as a node name). */
export function sameHostPort(a: { host: string; port: number }, b: { host: string; port: number }): boolean {
  return a.host === b.host && a.port === b.port;
}

export function hostPort(host: string, port: number): string {
  return `${urlHost(host)}:${port}`;
}

/** Where other nodes reach a node's Icecast: its internal port when it has one; null without an address. */
export function nodeIcecast(n: { name: string; addresses: readonly string[]; icecastInternalPort: number; icecastPort: number }): { name: string; host: string; port: number } | null {
  const host = n.addresses[0];
  return host === undefined ? null : { name: n.name, host, port: n.icecastInternalPort || n.icecastPort };
}
