/**
 * Reads the local Icecast's `/admin/stats` (XML, basic auth) into per-mount
 * figures. Icecast lists only mounts that are live (a source or a relay is
 * connected), which is exactly what "ready" means.
 */
import { hostPort } from '../shared/host-port.ts';

export interface IcecastMountStats {
  listeners: number;
  bytesRead: number;
  bytesSent: number;
  contentType: string;
}

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
    mounts.set(unescape(m[1]!), {
      listeners,
      bytesRead: Number(field(block, 'total_bytes_read') ?? 0),
      bytesSent: Number(field(block, 'total_bytes_sent') ?? 0),
      contentType: field(block, 'server_type') ?? '',
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
