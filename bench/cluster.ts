/**
 * The system under test for the benchmarks: one etcd, a radiod in proxy
 * mode (the master, whose Icecast takes the source), a radiod in redirect
 * mode, one mount and a steady 128 kbit/s MP3 source from ffmpeg.
 */
import { waitFor } from '../harness/net.ts';
import { startEtcd, type Etcd } from '../harness/etcd.ts';
import { httpGet } from '../harness/net.ts';
import { radioctl, startRadiod, type Radiod } from '../harness/radiod.ts';
import { run, type Proc } from '../harness/process.ts';
import { KeepSource, Listener, ffmpegMp3Source, icecastUrl, mp3Frames, oggPages } from '../harness/stream.ts';

/**
 * The benchmarks' stream: MP3 at a constant 128 kbit/s, exactly 16,000 bytes a
 * second. `fanout` can use Ogg Vorbis instead (BENCH_FANOUT_FORMAT=ogg).
 */
export const MOUNT = '/live.mp3';

export type StreamFormat = 'mp3' | 'ogg';

export interface Stream {
  mount: string;
  format: StreamFormat;
  source: KeepSource;
}

export interface Cluster {
  etcd: Etcd;
  proxy: Radiod;
  redirector: Radiod;
  source: KeepSource;
  stop: () => Promise<void>;
}

/**
 * Ogg Vorbis at a constant 128 kbit/s (~16.2 kB/s with the Ogg framing):
 * min/max rate hold it there, where a sine left variable encodes to ~3.7 kB/s.
 * Pages of 250 ms (~4 KiB, about what libogg writes) instead of ffmpeg's 1 s
 * (~16 KiB): a listener's bytes come a page at a time, and 1 s pages would
 * put a 10 s count in steps of a tenth of the rate, across the 15 kB/s mark.
 */
export function ffmpegOggSource(url: string): Proc {
  return run('ffmpeg', [
    '-nostdin', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100',
    '-c:a', 'libvorbis', '-b:a', '128k', '-minrate', '128k', '-maxrate', '128k',
    '-content_type', 'application/ogg', '-f', 'ogg', '-page_duration', '250000', url,
  ]);
}

/**
 * Creates `mount` and feeds it a 128 kbit/s source of `format` on the proxy's
 * ICECAST_PORT, then waits until a listener of the proxy gets audio.
 */
export async function startStream(etcdUrl: string, proxy: Radiod, mount: string, format: StreamFormat): Promise<Stream> {
  const r = await radioctl(etcdUrl, ['--json', 'create-mount', mount]);
  const m = JSON.parse(r.stdout) as { username: string; password: string };
  const url = icecastUrl(m.username, m.password, proxy.host, proxy.icecastPort, mount);
  const source = new KeepSource(() => (format === 'ogg' ? ffmpegOggSource(url) : ffmpegMp3Source(url)));
  await waitFor(async () => {
    const l = new Listener(`http://${proxy.host}:${proxy.httpPort}${mount}`);
    await new Promise((res) => setTimeout(res, 1500));
    l.close();
    return format === 'ogg' ? oggPages(l.data()) >= 3 : mp3Frames(l.data()).length >= 20;
  }, 30_000, `the ${format} stream through the proxy`, 100);
  return { mount, format, source };
}

/** radiod's per-address connection limits off: every benchmark client comes from one loopback address. */
export const ONE_ADDRESS_MANY_CLIENTS = ['--client-conn-rate', '0', '--client-pending', '0'];

export async function startCluster(): Promise<Cluster> {
  const etcd = await startEtcd();
  // DNS rate limiting stays on, at a rate one load generator does not reach (bench dns). The load
  // generator is one address standing for thousands of listeners: the per-address limits are off.
  const proxy = await startRadiod({ name: 'bench-proxy', host: '127.0.0.2', etcd: etcd.url, workers: Number(process.env.BENCH_WORKERS ?? 2), leaseTtl: 5, extraArgs: ['--dns-rrl', '1000000', ...ONE_ADDRESS_MANY_CLIENTS] });
  await waitFor(async () => (await proxy.health()).body.icecast === 'ready', 20_000, 'the proxy node');
  const redirector = await startRadiod({ name: 'bench-redirect', host: '127.0.0.3', etcd: etcd.url, workers: 1, leaseTtl: 5, extraArgs: ['--enable-icecast-proxy', 'false', '--dns-rrl', '1000000', ...ONE_ADDRESS_MANY_CLIENTS] });
  const { source } = await startStream(etcd.url, proxy, MOUNT, 'mp3');
  await waitFor(async () => (await httpGet(`http://${redirector.host}:${redirector.httpPort}${MOUNT}`)).status === 302, 20_000, 'the redirector');
  return {
    etcd, proxy, redirector, source,
    stop: async () => {
      await source.stop();
      await redirector.stop();
      await proxy.stop();
      await etcd.stop();
    },
  };
}
