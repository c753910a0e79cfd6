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
