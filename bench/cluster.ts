/**
 * The system under test for the benchmarks: one etcd, a radiod in proxy
 * mode (the master, whose Icecast takes the source), a radiod in redirect
 * mode, one mount and a steady 128 kbit/s MP3 source from ffmpeg.
 */
import { waitFor } from '../harness/net.ts';
import { startEtcd, type Etcd } from '../harness/etcd.ts';
import { httpGet } from '../harness/net.ts';
import { radioctl, startRadiod, type Radiod } from '../harness/radiod.ts';
import { KeepSource, Listener, ffmpegMp3Source, icecastUrl, mp3Frames } from '../test/helpers/stream.ts';

/**
 * The benchmarks' stream: MP3 at a constant 128 kbit/s, exactly 16,000 bytes a
 * second (a variable-rate Ogg Vorbis source averages below its nominal rate,
 * which would blur the "at least 15 kB/s" measure of fanout).
 */
export const MOUNT = '/live.mp3';

export interface Cluster {
  etcd: Etcd;
  proxy: Radiod;
  redirector: Radiod;
  source: KeepSource;
  stop: () => Promise<void>;
}

export async function startCluster(): Promise<Cluster> {
  const etcd = await startEtcd();
  // DNS rate limiting stays on, at a rate one load generator does not reach (bench dns).
  const proxy = await startRadiod({ name: 'bench-proxy', host: '127.0.0.2', etcd: etcd.url, workers: Number(process.env.BENCH_WORKERS ?? 2), leaseTtl: 5, extraArgs: ['--dns-rrl', '1000000'] });
  await waitFor(async () => (await proxy.health()).body.icecast === 'ready', 20_000, 'the proxy node');
  const redirector = await startRadiod({ name: 'bench-redirect', host: '127.0.0.3', etcd: etcd.url, workers: 1, leaseTtl: 5, extraArgs: ['--enable-icecast-proxy', 'false', '--dns-rrl', '1000000'] });
  const r = await radioctl(etcd.url, ['--json', 'create-mount', MOUNT]);
  const m = JSON.parse(r.stdout) as { username: string; password: string };
  const source = new KeepSource(() => ffmpegMp3Source(icecastUrl(m.username, m.password, proxy.host, proxy.icecastPort, MOUNT)));
  await waitFor(async () => {
    const l = new Listener(`http://${proxy.host}:${proxy.httpPort}${MOUNT}`);
    await new Promise((res) => setTimeout(res, 1500));
    l.close();
    return mp3Frames(l.data()).length >= 20;
  }, 30_000, 'the stream through the proxy', 100);
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
