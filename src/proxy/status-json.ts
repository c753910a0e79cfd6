/**
 * GET /status-json.xsl: the cluster's live mounts in the JSON shape of
 * Icecast 2.4's status page, which web players and "now playing" widgets
 * poll. Listeners are summed over every node (the snapshot's count), the
 * description and title come from the Icecast that holds the source, and
 * each listen URL is the cluster's stream name on the port asked. Unlike
 * Icecast, which gives a lone mount as an object, `source` is always an
 * array, which is what widgets written for several mounts expect.
 */
import { VERSION } from '../core/version.ts';
import type { Snapshot } from '../ipc/snapshot.ts';
import { streamUrl, type Scheme } from './playlist.ts';

export function statusJson(snap: Snapshot, domain: string, port: number, startedAt: string, scheme: Scheme = 'http'): string {
  const source = snap.mounts.filter((m) => m.readyOn.length > 0).map((m) => ({
    audio_info: m.info.bitrate > 0 ? `bitrate=${m.info.bitrate}` : '',
    bitrate: m.info.bitrate > 0 ? m.info.bitrate : null,
    genre: m.info.genre,
    listener_peak: m.listeners,
    listeners: m.listeners,
    listenurl: streamUrl(domain, port, m.path, scheme),
    server_description: m.info.description,
    server_name: m.info.name,
    server_type: m.info.contentType,
    server_url: m.info.url,
    stream_start: m.info.streamStart,
    stream_start_iso8601: m.info.streamStart,
    title: m.info.title,
    dummy: null,
  }));
  return JSON.stringify({
    icestats: {
      admin: '',
      host: `stream.${domain}`,
      location: domain,
      server_id: `radioai ${VERSION}`,
      server_start_iso8601: startedAt,
      source,
    },
  });
}
