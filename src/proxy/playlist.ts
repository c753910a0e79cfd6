/**
 * Playlists for a mount: `.m3u` and `.pls`, whose entry is the cluster's
 * stream name (`http://stream.DOMAIN/MOUNT`), so players resolve it through
 * radioai's DNS to a healthy node each time they connect.
 */

export function streamUrl(domain: string, httpPort: number, mount: string): string {
  return `http://stream.${domain}${httpPort === 80 ? '' : `:${httpPort}`}${mount}`;
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
  const m = /^(.*)\.(m3u|pls)$/i.exec(url);
  if (!m) return null;
  return { mount: m[1]!, kind: m[2]!.toLowerCase() as 'm3u' | 'pls' };
}
