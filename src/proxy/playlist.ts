/**
 * Playlists for a mount: `.m3u` and `.pls`, whose entry is the cluster's
 * stream name (`http://stream.DOMAIN/MOUNT`), so players resolve it through
 * radioai's DNS to a healthy node each time they connect. Asked for over
 * HTTPS, the entry is an https:// URL on HTTPS_PORT: a web page served over
 * HTTPS may not play an http:// stream.
 */

export type Scheme = 'http' | 'https';

/** `scheme://host[:port]`, the port left out when it is the scheme's own. */
export function origin(scheme: Scheme, host: string, port: number): string {
  return `${scheme}://${host}${port === (scheme === 'https' ? 443 : 80) ? '' : `:${port}`}`;
}

export function streamUrl(domain: string, port: number, mount: string, scheme: Scheme = 'http'): string {
  return `${origin(scheme, `stream.${domain}`, port)}${mount}`;
}

export function m3u(url: string): string {
  return `${url}\n`;
}

export function pls(url: string, title: string): string {
  return `[playlist]\nNumberOfEntries=1\nFile1=${url}\nTitle1=${title}\nLength1=-1\nVersion=2\n`;
}

export const PLAYLIST_TYPES = { m3u: 'audio/x-mpegurl', pls: 'audio/x-scpls' } as const;

/** Splits `/live.ogg.m3u` into the mount and the playlist kind, or null. */
export function playlistOf(url: string): { mount: string; kind: 'm3u' | 'pls' } | null {
  // Every listener request passes here: most are not playlists, which a look at one character says.
  if (url.charCodeAt(url.length - 4) !== 46 /* . */) return null;
  const m = /^(.*)\.(m3u|pls)$/i.exec(url);
  if (!m) return null;
  return { mount: m[1]!, kind: m[2]!.toLowerCase() as 'm3u' | 'pls' };
}
