/**
 * Host and port as they appear in URLs and in `radioctl status`: an IPv6
 * address goes in brackets (RFC 3986), anything else as it is.
 */

export function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export function hostPort(host: string, port: number): string {
  return `${urlHost(host)}:${port}`;
}
