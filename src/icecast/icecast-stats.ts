/**
 * Reads the local Icecast's `/admin/stats` (XML, basic auth) into per-mount
 * figures: the mounts that are live (a source or a relay is connected),
 * which is exactly what "ready" means. Icecast 2.4 also lists a mount whose
 * source has left while its listeners play the fallback, with nothing but
 * listener counts in it; a live mount has a `stream_start`.
 */
import { hostPort } from '../core/host-port.ts';
import type { StreamInfo } from '../ipc/snapshot.ts';

export interface IcecastMountStats {
  listeners: number;
  bytesRead: number;
  bytesSent: number;
  contentType: string;
  /** What the source announced and the title it set last, as Icecast reports them. */
  info: LiveInfo;
}

/** A live mount's description from Icecast's statistics: StreamInfo less what Icecast does not know. */
export type LiveInfo = Omit<StreamInfo, 'username'>;

export interface IcecastStats {
  listeners: number;
  mounts: Map<string, IcecastMountStats>;
}

const unescape = (s: string): string =>
  s.replace(/&(lt|gt|quot|apos|amp);/g, (_, e: string) => ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' })[e]!);

function field(block: string, name: string): string | null {
  const m = new RegExp(`<${name}>([^<]*)</${name}>`).exec(block);
  return m ? unescape(m[1]!) : null;
}

export function parseIcecastStats(xml: string): IcecastStats {
  const mounts = new Map<string, IcecastMountStats>();
  const re = /<source mount="([^"]*)">([\s\S]*?)<\/source>/g;
  let total = 0;
  for (let m = re.exec(xml); m; m = re.exec(xml)) {
    const block = m[2]!;
    const listeners = Number(field(block, 'listeners') ?? 0);
    total += listeners;
    if (field(block, 'stream_start') === null) continue;
    mounts.set(unescape(m[1]!), {
      listeners,
      bytesRead: Number(field(block, 'total_bytes_read') ?? 0),
      bytesSent: Number(field(block, 'total_bytes_sent') ?? 0),
      contentType: field(block, 'server_type') ?? '',
      info: {
        title: field(block, 'title') ?? '',
        name: field(block, 'server_name') ?? '',
        description: field(block, 'server_description') ?? '',
        genre: field(block, 'genre') ?? '',
        url: field(block, 'server_url') ?? '',
        contentType: field(block, 'server_type') ?? '',
        bitrate: Number(field(block, 'bitrate') ?? field(block, 'ice-bitrate') ?? 0) || 0,
        streamStart: field(block, 'stream_start_iso8601') ?? '',
      },
    });
  }
  return { listeners: total, mounts };
}

export async function fetchIcecastStats(host: string, port: number, adminPassword: string, timeoutMs = 2000): Promise<IcecastStats> {
  const res = await fetch(`http://${hostPort(host, port)}/admin/stats`, {
    headers: { authorization: `Basic ${Buffer.from(`admin:${adminPassword}`).toString('base64')}` },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) throw new Error(`/admin/stats answered ${res.status}`);
  return parseIcecastStats(await res.text());
}
