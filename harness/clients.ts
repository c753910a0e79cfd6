/**
 * Real Icecast client programs from Debian packages, run against an
 * Icecast-compatible URL, so that tests can show radioai behaves like a plain
 * Icecast 2.4 to the programs people actually use, not just to our own HTTP
 * code. Sources return the running process; listeners run headless for a
 * bounded time, are ended by PID and return evidence (decoded bytes, titles
 * seen) that a URL serving nothing, or a 404, cannot produce.
 *
 * Debian packages (apt-get install --no-install-recommends): CLIENT_PACKAGES.
 */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, chownSync, closeSync, constants, existsSync, openSync, readFileSync, readSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';
import { killPid, run, tempDir, type Exit, type Proc } from './process.ts';
import { waitFor } from './net.ts';
import { mp3Frames, oggPages } from './stream.ts';

/** What the functions here need from Debian 12 (plus icecast2 for a reference server). */
export const CLIENT_PACKAGES = [
  'ffmpeg', 'curl', 'ezstream', 'ices2', 'liquidsoap',
  'mpv', 'vlc-bin', 'vlc-plugin-base', 'mplayer', 'mpg123', 'vorbis-tools', 'streamripper',
  'chromium-headless-shell',
] as const;

/** True when `name` is an executable on PATH, so a test can skip a client that is not installed. */
export function haveProgram(name: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

// ---------------------------------------------------------------- sources

export type Format = 'ogg' | 'mp3';

export interface SourceOptions {
  host: string;
  port: number;
  mount: string;
  /** Plain Icecast 2.4 with a global or per-mount source password takes only "source" (others get 401). */
  user: string;
  password: string;
  format: Format;
  /** A stream title, sent the way the program sends titles (see each function). */
  title?: string;
  /**
   * Run the program with this file as its /etc/resolv.conf (a mount
   * namespace of its own; needs root), so that it looks host names up in the
   * cluster's DNS as it would on a machine whose resolver points there.
   */
  resolvConf?: string;
}

/** Runs `cmd` in a mount namespace of its own where `resolvConf` is /etc/resolv.conf. */
function withResolvConf(resolvConf: string | undefined, cmd: string, args: string[]): [string, string[]] {
  if (resolvConf === undefined) return [cmd, args];
  return ['unshare', ['--mount', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolvConf, cmd, ...args]];
}

export type SourceClient = (o: SourceOptions) => Proc;

const CONTENT_TYPE: Record<Format, string> = { ogg: 'application/ogg', mp3: 'audio/mpeg' };

/** A steady sine wave, paced in real time (-re) like a live source. */
const SINE = ['-nostdin', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100'];

/**
 * Encoder and muxer arguments. Ogg carries the title in its Vorbis comments,
 * which Icecast reads in-band; MP3 from ffmpeg cannot carry one (Icecast
 * ignores ID3), so the ID3 and Xing headers are left out to keep the stream
 * plain frames.
 */
function encode(format: Format, title?: string): string[] {
  if (format === 'ogg') {
    // min/max rate keep a sine wave near 128 kbit/s; plain VBR makes it ~25 kbit/s.
    return ['-ac', '2', '-c:a', 'libvorbis', '-b:a', '128k', '-minrate', '128k', '-maxrate', '128k',
      ...(title !== undefined ? ['-metadata', `title=${title}`] : []), '-f', 'ogg'];
  }
  return ['-ac', '2', '-c:a', 'libmp3lame', '-b:a', '128k', '-id3v2_version', '0', '-write_xing', '0', '-f', 'mp3'];
}

function creds(o: SourceOptions): string {
  return `${encodeURIComponent(o.user)}:${encodeURIComponent(o.password)}`;
}

/**
 * ffmpeg's icecast:// output: `PUT` HTTP/1.1 with `Expect: 100-continue`, no
 * length and no chunking (it also sends `Icy-MetaData: 1`, meant for listeners).
 */
export function ffmpegIcecastSource(o: SourceOptions): Proc {
  return run('ffmpeg', [...SINE, ...encode(o.format, o.title), '-content_type', CONTENT_TYPE[o.format], '-ice_name', 'radioai test',
    `icecast://${creds(o)}@${o.host}:${o.port}${o.mount}`]);
}

/** ffmpeg's icecast:// output with -legacy_icecast 1: `SOURCE` HTTP/1.1 (what pre-2.4 Icecast expects). */
export function ffmpegLegacySource(o: SourceOptions): Proc {
  return run('ffmpeg', [...SINE, ...encode(o.format, o.title), '-content_type', CONTENT_TYPE[o.format], '-ice_name', 'radioai test',
    '-legacy_icecast', '1', `icecast://${creds(o)}@${o.host}:${o.port}${o.mount}`]);
}

/** ffmpeg's plain http:// output with -method PUT: HTTP/1.1 with `Transfer-Encoding: chunked`. */
export function ffmpegHttpPutSource(o: SourceOptions): Proc {
  return run('ffmpeg', [...SINE, ...encode(o.format, o.title), '-method', 'PUT', '-auth_type', 'basic',
    '-content_type', CONTENT_TYPE[o.format], `http://${creds(o)}@${o.host}:${o.port}${o.mount}`]);
}

/**
 * `ffmpeg | curl -T -`: curl PUTs its standard input with HTTP/1.1,
 * `Transfer-Encoding: chunked` and `Expect: 100-continue`. The audio goes
 * through this process (not a shared pipe) so that no byte is lost between
 * the two; kill() ends both.
 */
export function curlPutSource(o: SourceOptions): Proc {
  const enc = spawn('ffmpeg', [...SINE, ...encode(o.format, o.title), 'pipe:1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const curl = spawn('curl', ['-sS', '--no-progress-meter', '-T', '-', '-u', `${o.user}:${o.password}`,
    '-H', `Content-Type: ${CONTENT_TYPE[o.format]}`, '-H', 'Ice-Name: radioai test',
    `http://${o.host}:${o.port}${o.mount}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer): void => {
    out += d.toString();
  };
  enc.stderr.on('data', keep);
  curl.stdout.on('data', keep);
  curl.stderr.on('data', keep);
  enc.stdout.pipe(curl.stdin);
  curl.stdin.on('error', () => undefined); // curl gone: ffmpeg is ended below
  const exited = new Promise<Exit>((resolve) => {
    curl.on('close', (code, signal) => resolve({ code, signal }));
    curl.on('error', (e) => {
      out += `curl: ${e.message}\n`;
      resolve({ code: -1, signal: null });
    });
  });
  const encExited = new Promise<void>((resolve) => {
    enc.on('close', () => resolve());
    enc.on('error', (e) => {
      out += `ffmpeg: ${e.message}\n`;
      curl.stdin.end();
      resolve();
    });
  });
  void exited.then(() => killPid(enc.pid ?? null, 'SIGTERM'));
  return {
    child: curl,
    pid: curl.pid ?? -1,
    output: () => out,
    exited,
    kill: async (sig: NodeJS.Signals = 'SIGTERM') => {
      killPid(enc.pid ?? null, sig);
      killPid(curl.pid ?? null, sig);
      await encExited;
      return exited;
    },
  };
}

// Media files for the programs that stream files (ezstream, ices2), made once per format and title.
const media = new Map<string, string>();
let mediaDir: string | null = null;

function mediaFile(format: Format, title?: string): string {
  const key = `${format}\0${title ?? ''}`;
  const have = media.get(key);
  if (have !== undefined) return have;
  mediaDir ??= tempDir('media');
  const file = join(mediaDir, `m${media.size}.${format}`);
  // 60 s so that a test rarely sees the loop; Vorbis comments carry the title for ices2.
  const r = spawnSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100:duration=60',
    ...encode(format, title), '-y', file], { timeout: 60_000, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ffmpeg could not make ${file}: ${r.stderr || String(r.error)}`);
  media.set(key, file);
  return file;
}

function xml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/**
 * ezstream (libshout 2.4.6) looping a file. libshout first sends
 * `OPTIONS * HTTP/1.1` with `Upgrade: TLS/1.0` and `GET /admin/!POKE` (its TLS
 * "may" default, kept because real users keep it), then `SOURCE` HTTP/1.0
 * without credentials, and again with them after the 401. A title is sent as
 * `GET /admin/metadata?mode=updinfo&mount=..&charset=UTF-8&song=..` HTTP/1.1,
 * for Ogg too, repeated every 5 s by a metadata program.
 */
export function ezstreamSource(o: SourceOptions): Proc {
  const dir = tempDir('ezstream');
  const file = mediaFile(o.format);
  let metadata = '';
  if (o.title !== undefined) {
    writeFileSync(join(dir, 'title.txt'), `${o.title}\n`);
    // ezstream calls the program with no argument for the whole title ("artist"/"title" get nothing).
    const prog = join(dir, 'meta.sh');
    writeFileSync(prog, `#!/bin/sh\ntest -z "$1" && cat '${join(dir, 'title.txt')}'\nexit 0\n`, { mode: 0o755 });
    metadata = `<metadata><program>${xml(prog)}</program><refresh_interval>5</refresh_interval></metadata>`;
  }
  const cfg = join(dir, 'ezstream.xml');
  writeFileSync(cfg, `<?xml version="1.0" encoding="UTF-8"?>
<ezstream>
  <servers><server><protocol>HTTP</protocol><hostname>${xml(o.host)}</hostname><port>${o.port}</port>
    <user>${xml(o.user)}</user><password>${xml(o.password)}</password><reconnect_attempts>0</reconnect_attempts></server></servers>
  <streams><stream><mountpoint>${xml(o.mount)}</mountpoint><format>${o.format === 'ogg' ? 'Ogg' : 'MP3'}</format>
    <stream_name>radioai test</stream_name></stream></streams>
  <intakes><intake><type>file</type><filename>${xml(file)}</filename><stream_once>No</stream_once></intake></intakes>
  ${metadata}
</ezstream>
`, { mode: 0o600 }); // ezstream warns of a config others can read (it holds the password)
  return run('ezstream', ['-v', '-c', cfg]);
}

/**
 * ices2 (libshout 2.4.6) playing a looping playlist of one Ogg Vorbis file.
 * Same requests as ezstream (OPTIONS/POKE probes, then SOURCE HTTP/1.0). It
 * sends no /admin/metadata: the title travels in-band as the file's Vorbis
 * comments. Ogg only; MP3 throws.
 */
export function ices2Source(o: SourceOptions): Proc {
  if (o.format !== 'ogg') throw new Error('ices2 streams Ogg Vorbis only');
  const dir = tempDir('ices2');
  const playlist = join(dir, 'playlist.txt');
  writeFileSync(playlist, `${mediaFile('ogg', o.title)}\n`);
  const cfg = join(dir, 'ices.xml');
  writeFileSync(cfg, `<?xml version="1.0"?>
<ices>
  <background>0</background><logpath>${xml(dir)}</logpath><logfile>ices.log</logfile><loglevel>3</loglevel><consolelog>1</consolelog>
  <stream>
    <metadata><name>radioai test</name><genre>test</genre><description>ices2</description></metadata>
    <input><module>playlist</module><param name="type">basic</param><param name="file">${xml(playlist)}</param>
      <param name="random">0</param><param name="restart-after-reread">0</param><param name="once">0</param></input>
    <instance><hostname>${xml(o.host)}</hostname><port>${o.port}</port><username>${xml(o.user)}</username>
      <password>${xml(o.password)}</password><mount>${xml(o.mount)}</mount><yp>0</yp>
      <reconnectdelay>1</reconnectdelay><reconnectattempts>0</reconnectattempts></instance>
  </stream>
</ices>
`, { mode: 0o600 });
  return run('ices2', [cfg]);
}

/**
 * liquidsoap 2.1 output.icecast from a sine source: `SOURCE` HTTP/1.0 with
 * credentials at once (no 401 round). For MP3 a title is sent as
 * `GET /admin/metadata?mode=updinfo&mount=/m&charset=UTF-8&title=..&song=..`
 * HTTP/1.0 (every 5 s); for Ogg it goes in-band. Settings go through the
 * environment so that no value needs quoting in liquidsoap's language.
 */
export function liquidsoapSource(o: SourceOptions): Proc {
  const dir = tempDir('liquidsoap');
  const script = join(dir, 'source.liq');
  const enc = o.format === 'ogg' ? '%vorbis(quality=0.3)' : '%mp3(bitrate=128)';
  writeFileSync(script, `# liquidsoap 2.1 refuses to run as root without this.
settings.init.allow_root.set(true)
settings.log.stdout.set(true)
settings.log.file.set(false)
s = insert_metadata(sine(440.))
${o.title !== undefined ? 'thread.run(delay=1., every=5., fun () -> s.insert_metadata([("title", getenv("RADIOAI_TITLE"))]))' : ''}
output.icecast(${enc}, host=getenv("RADIOAI_HOST"), port=${o.port}, user=getenv("RADIOAI_USER"),
  password=getenv("RADIOAI_PASSWORD"), mount=getenv("RADIOAI_MOUNT"), name="radioai test", s)
`);
  return run(...withResolvConf(o.resolvConf, 'liquidsoap', [script]), {
    RADIOAI_HOST: o.host, RADIOAI_USER: o.user, RADIOAI_PASSWORD: o.password, RADIOAI_MOUNT: o.mount, RADIOAI_TITLE: o.title ?? '',
  });
}

/** Every source above by name, with the formats it can send, for tests that go over all of them. */
export const SOURCE_CLIENTS: readonly { name: string; start: SourceClient; formats: readonly Format[] }[] = [
  { name: 'ffmpeg icecast:// (PUT)', start: ffmpegIcecastSource, formats: ['ogg', 'mp3'] },
  { name: 'ffmpeg icecast:// legacy (SOURCE)', start: ffmpegLegacySource, formats: ['ogg', 'mp3'] },
  { name: 'ffmpeg http:// PUT chunked', start: ffmpegHttpPutSource, formats: ['ogg', 'mp3'] },
  { name: 'curl -T - (PUT chunked)', start: curlPutSource, formats: ['ogg', 'mp3'] },
  { name: 'ezstream (libshout)', start: ezstreamSource, formats: ['ogg', 'mp3'] },
  { name: 'ices2 (libshout)', start: ices2Source, formats: ['ogg'] },
  { name: 'liquidsoap', start: liquidsoapSource, formats: ['ogg', 'mp3'] },
];

// ---------------------------------------------------------------- listeners

export interface ListenOptions {
  /** How long to listen (default 3 s). */
  seconds?: number;
  /** When given, ok also requires that this title was seen. */
  expectTitle?: string;
}

export interface ListenResult {
  ok: boolean;
  /** One line saying why ok is what it is. */
  evidence: string;
  /** Audio bytes: decoded PCM for players, received stream bytes for recorders. */
  bytes: number;
  /** Stream titles the program reported, in order, without repeats. */
  titles: string[];
  /** The end of the program's output, for a failure message. */
  output: string;
}

interface Ran {
  output: string;
  exit: Exit;
  /** True when the time ran out and the process was ended by PID. */
  killed: boolean;
}

/**
 * Output as a person reads it: each line as UTF-8 when it is valid UTF-8,
 * else as Latin-1. Players print ICY titles as the raw bytes they got, and
 * Icecast 2.4 sends MP3 titles in Latin-1 (its default mount charset).
 */
function decodeLines(buf: Buffer): string {
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const lines: string[] = [];
  for (let at = 0; at < buf.length;) {
    const nl = buf.indexOf(0x0a, at);
    const end = nl < 0 ? buf.length : nl + 1;
    const line = buf.subarray(at, end);
    try {
      lines.push(utf8.decode(line));
    } catch {
      lines.push(line.toString('latin1'));
    }
    at = end;
  }
  return lines.join('');
}

/**
 * Runs a program for at most `ms`, then SIGTERM and, 2 s later, SIGKILL to
 * its PID (some players ignore SIGTERM while blocked in a read). Like run()
 * in harness/process.ts, but the output is kept as bytes for decodeLines, and
 * a program that is not installed gives an output saying so, not a throw.
 */
async function runFor(cmd: string, args: string[], ms: number, env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  const chunks: Buffer[] = [];
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d: Buffer) => chunks.push(d));
  child.stderr.on('data', (d: Buffer) => chunks.push(d));
  const exited = new Promise<Exit>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }));
    child.on('error', (e) => {
      chunks.push(Buffer.from(`${cmd}: ${e.message}\n`));
      resolve({ code: -1, signal: null });
    });
  });
  const within = async (t: number): Promise<Exit | null> => {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([exited, new Promise<null>((res) => (timer = setTimeout(() => res(null), t)))]);
    clearTimeout(timer);
    return r;
  };
  let exit = await within(ms);
  const killed = exit === null;
  if (exit === null && child.pid !== undefined) {
    killPid(child.pid, 'SIGTERM');
    exit = await within(2000);
    if (exit === null) {
      killPid(child.pid, 'SIGKILL');
      exit = await exited;
    }
  }
  return { output: decodeLines(Buffer.concat(chunks)), exit: exit ?? { code: null, signal: null }, killed };
}

function seconds(o: ListenOptions): number {
  return o.seconds ?? 3;
}

/** PCM bytes after the WAV header (0 when there is no file); works for files whose header was never finished. */
function wavBytes(file: string): number {
  if (!existsSync(file)) return 0;
  const size = statSync(file).size;
  const head = Buffer.alloc(Math.min(size, 4096));
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  const at = head.indexOf('data');
  return at < 0 ? 0 : Math.max(0, size - (at + 8));
}

function uniq(xs: string[]): string[] {
  return xs.map((x) => x.trim()).filter((x, i, all) => x !== '' && all.indexOf(x) === i);
}

function all(re: RegExp, text: string): string[] {
  return [...text.matchAll(re)].map((m) => m[1] ?? '');
}

function tail(s: string): string {
  // Status lines redraw with \r; keep what a person would read.
  return s.replace(/\r(?!\n)/g, '\n').replace(/\n{2,}/g, '\n').slice(-2000);
}

function result(program: string, bytes: number, titles: string[], output: string, o: ListenOptions, fail?: string, unit = 'audio bytes'): ListenResult {
  const titleOk = o.expectTitle === undefined || titles.includes(o.expectTitle);
  const ok = fail === undefined && bytes > 0 && titleOk;
  const why = fail ?? (bytes <= 0 ? 'no audio' : !titleOk ? `title ${JSON.stringify(o.expectTitle)} not seen` : 'audio');
  const evidence = `${program}: ${why}; ${bytes} ${unit}; titles ${JSON.stringify(titles)}`;
  return { ok, evidence, bytes, titles, output: tail(output) };
}

/** mpv decoding to a WAV file (`--ao=pcm`); titles from its "icy-title:" and Vorbis "Title:" tag lines. */
export async function mpvListen(url: string, o: ListenOptions = {}): Promise<ListenResult> {
  const dir = tempDir('mpv');
  const wav = join(dir, 'out.wav');
  const r = await runFor('mpv', ['--no-config', '--quiet', '--no-video', '--ao=pcm', `--ao-pcm-file=${wav}`,
    `--length=${seconds(o)}`, '--network-timeout=5', url], seconds(o) * 1000 + 10_000, { HOME: dir });
  const titles = uniq(all(/^\s*(?:icy-title|title): (.*)$/gim, r.output));
  const failed = /Errors when loading file|Failed to open|Failed to recognize/.test(r.output) ? 'mpv could not open it' : undefined;
  return result('mpv', wavBytes(wav), titles, r.output, o, failed);
}

/** mplayer with `-ao pcm:file=` and `-endpos`; titles from "ICY Info: StreamTitle=" and Ogg "Title:" lines. */
export async function mplayerListen(url: string, o: ListenOptions = {}): Promise<ListenResult> {
  const dir = tempDir('mplayer');
  const wav = join(dir, 'out.wav');
  const r = await runFor('mplayer', ['-nolirc', '-noconsolecontrols', '-nojoystick', '-vo', 'null', '-vc', 'null',
    '-ao', `pcm:file=${wav}`, '-endpos', String(seconds(o)), url], seconds(o) * 1000 + 10_000, { HOME: dir });
  const titles = uniq([...all(/ICY Info: StreamTitle='(.*?)';/g, r.output), ...all(/^\s*title: (.*)$/gim, r.output)]);
  return result('mplayer', wavBytes(wav), titles, r.output, o);
}

/** mpg123 (MP3 only) with `-w out.wav -n frames`; titles from its "ICY-META: StreamTitle=" lines (-v). */
export async function mpg123Listen(url: string, o: ListenOptions = {}): Promise<ListenResult> {
  const dir = tempDir('mpg123');
  const wav = join(dir, 'out.wav');
  // 44.1 kHz MPEG-1 Layer III: 1152 samples a frame, 38.3 frames a second.
  const frames = Math.ceil(seconds(o) * 38.3);
  const r = await runFor('mpg123', ['-v', '-w', wav, '-n', String(frames), url], seconds(o) * 1000 + 10_000);
  const titles = uniq(all(/ICY-META: StreamTitle='(.*?)';/g, r.output));
  return result('mpg123', wavBytes(wav), titles, r.output, o);
}

/**
 * ogg123 (Ogg only) writing WAV, ended by PID after the time: its -K counts
 * from the stream's own granule position, so it cannot bound a stream joined
 * in the middle. Titles from the "Title:" comment lines it prints.
 */
export async function ogg123Listen(url: string, o: ListenOptions = {}): Promise<ListenResult> {
  const dir = tempDir('ogg123');
  const wav = join(dir, 'out.wav');
  const r = await runFor('ogg123', ['--buffer', '32', '--prebuffer', '5', '-d', 'wav', '-f', wav, url], seconds(o) * 1000 + 2000);
  const titles = uniq(all(/^\s*Title: (.*)$/gim, r.output));
  const failed = /Error opening/.test(r.output) ? 'ogg123 could not open it' : undefined;
  return result('ogg123', wavBytes(wav), titles, r.output, o, failed);
}

let nobodyIds: { uid: number; gid: number } | null = null;

/** uid of nobody and gid of nogroup, for programs that refuse root. */
function nobody(): { uid: number; gid: number } {
  if (nobodyIds) return nobodyIds;
  const id = (args: string[]): number => Number(spawnSync('id', args, { encoding: 'utf8' }).stdout.trim());
  const gid = Number(/^nogroup:[^:]*:(\d+):/m.exec(readFileSync('/etc/group', 'utf8'))?.[1] ?? id(['-g', 'nobody']));
  nobodyIds = { uid: id(['-u', 'nobody']), gid };
  return nobodyIds;
}

export interface VlcListenOptions extends ListenOptions {
  /** Demux with libavformat instead of VLC's own demuxers (see vlcListen). */
  avformat?: boolean;
}

/**
 * VLC (dummy interface, `-A afile` to a WAV file, `--run-time`). VLC refuses
 * to run as root, so it runs as nobody through setpriv (which execs, so the
 * PID is VLC's own) in a directory nobody owns.
 *
 * VLC 3.0's own Ogg demuxer gives up ("buffer deadlock prevented", no audio)
 * on an Icecast 2.4 Ogg stream joined once the burst no longer reaches back
 * to the stream's start: the Vorbis headers (granule 0) are followed by pages
 * far later in time. Plain Icecast does this too, so on that message the run
 * is repeated once with libavformat's demuxer, and the evidence says so.
 */
export async function vlcListen(url: string, o: VlcListenOptions = {}): Promise<ListenResult> {
  const dir = tempDir('vlc');
  const { uid, gid } = nobody();
  chownSync(dir, uid, gid);
  const wav = join(dir, 'out.wav');
  const asNobody = process.getuid?.() === 0 ? ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups'] : [];
  const once = async (avformat: boolean): Promise<Ran> => {
    const args = ['vlc', '-I', 'dummy', '--no-video', '--play-and-exit', `--run-time=${seconds(o)}`, '--network-caching=1000',
      '-A', 'afile', `--audiofile-file=${wav}`, '--audiofile-wav',
      '--no-metadata-network-access', // no art or tag look-ups on the network
      ...(avformat ? ['--demux=avformat'] : []), url];
    const [cmd, ...rest] = [...asNobody, ...args];
    return runFor(cmd!, rest, seconds(o) * 1000 + 10_000, { HOME: dir });
  };
  let r = await once(o.avformat ?? false);
  let name = o.avformat === true ? 'vlc (avformat demux)' : 'vlc';
  if (o.avformat !== true && wavBytes(wav) === 0 && r.output.includes('buffer deadlock prevented')) {
    r = await once(true);
    name = 'vlc (own demuxer: "buffer deadlock prevented"; again with avformat demux)';
  }
  const failed = /unable to open the MRL|Your input can't be opened/.test(r.output) ? 'vlc could not open it' : undefined;
  return result(name, wavBytes(wav), [], r.output, o, failed);
}

/** Which of the two formats `buf` holds, judged by chained frames or pages; null for neither. */
function audioKind(buf: Buffer): Format | null {
  if (oggPages(buf) >= 2) return 'ogg';
  if (mp3Frames(buf).length >= 3) return 'mp3';
  return null;
}

/**
 * streamripper recording into a temp directory (`-a` one file, `-s` no
 * per-stream folder, `-l` seconds). The bytes count only when they hold Ogg
 * pages or MP3 frames; titles come from its "[ripping...] title [" status.
 */
export async function streamripperListen(url: string, o: ListenOptions = {}): Promise<ListenResult> {
  const dir = tempDir('streamripper');
  const r = await runFor('streamripper', [url, '-d', dir, '-s', '-a', 'stream', '-l', String(seconds(o)), '-t'], seconds(o) * 1000 + 15_000);
  const file = readdirSync(dir).find((f) => f.startsWith('stream.') && !f.endsWith('.cue'));
  const data = file !== undefined ? readFileSync(join(dir, file)) : Buffer.alloc(0);
  const kind = audioKind(data);
  // It shows "artist - title"; with no artist that is " - title".
  const titles = uniq(all(/\[(?:ripping|skipping)\.\.\.\s*\]\s*(.*?)\s*\[\s*[\d.]+\s*[kKmM]?b\]/g, r.output).map((t) => t.replace(/^-\s+/, '')))
    .filter((t) => t !== 'Title Unknown' && t !== '-'); // '-': no artist and no title yet
  const failed = kind === null && data.length > 0 ? `${data.length} bytes but neither Ogg pages nor MP3 frames` : undefined;
  return result(`streamripper (${kind ?? 'no audio'})`, kind === null ? 0 : data.length, titles, r.output, o, failed);
}

/**
 * ffprobe: ok when it finds an audio stream. It decodes nothing, so `bytes`
 * holds the sample rate; the title is the StreamTitle of an ICY stream.
 */
export async function ffprobeListen(url: string, o: ListenOptions = {}): Promise<ListenResult> {
  const r = await runFor('ffprobe', ['-v', 'error', '-rw_timeout', '5000000', '-of', 'json',
    '-show_entries', 'stream=codec_type,codec_name,sample_rate,channels:format=format_name:format_tags', url], seconds(o) * 1000 + 10_000);
  let codec = '';
  let rate = 0;
  const titles: string[] = [];
  const json = r.output.slice(r.output.indexOf('{'));
  try {
    const v: unknown = JSON.parse(json);
    const streams = field(v, 'streams');
    const audio = Array.isArray(streams) ? (streams as unknown[]).find((s) => field(s, 'codec_type') === 'audio') : undefined;
    const name = field(audio, 'codec_name');
    codec = typeof name === 'string' ? name : '';
    rate = Number(field(audio, 'sample_rate') ?? 0);
    const title = field(field(field(v, 'format'), 'tags'), 'StreamTitle') ?? field(field(field(v, 'format'), 'tags'), 'title');
    if (typeof title === 'string') titles.push(title);
  } catch {
    // no JSON: the error is in the output
  }
  const fail = r.exit.code !== 0 ? `ffprobe exited ${r.exit.code ?? r.exit.signal}` : codec === '' ? 'no audio stream' : undefined;
  return result(`ffprobe (${codec || '-'})`, rate, uniq(titles), r.output, o, fail, 'Hz');
}

function field(v: unknown, key: string): unknown {
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[key] : undefined;
}

export interface CurlListenOptions extends ListenOptions {
  /** --http1.0 or --http1.1 (default 1.1). */
  http?: '1.0' | '1.1';
  /** More of curl's options, such as --cacert and --resolve for HTTPS. */
  curlArgs?: string[];
}

/**
 * curl with --http1.0 or --http1.1 saving the body for the time given: ok
 * when the answer is 200 and the body holds Ogg pages or MP3 frames. curl's
 * own --max-time ends it (exit 28, expected for an endless stream).
 */
export async function curlListen(url: string, o: CurlListenOptions = {}): Promise<ListenResult & { status: string }> {
  const dir = tempDir('curl');
  const body = join(dir, 'body');
  const head = join(dir, 'head');
  const r = await runFor('curl', ['-sS', o.http === '1.0' ? '--http1.0' : '--http1.1', '-o', body, '-D', head,
    '--max-time', String(seconds(o)), ...(o.curlArgs ?? []), url], seconds(o) * 1000 + 5000);
  // With -L the file holds every answer's head: the last one is the stream's.
  const status = existsSync(head) ? (readFileSync(head, 'latin1').split('\r\n').filter((l) => /^(?:HTTP\/|ICY )/.test(l)).at(-1) ?? '') : '';
  const data = existsSync(body) ? readFileSync(body) : Buffer.alloc(0);
  const kind = audioKind(data);
  const fail = !/^(?:HTTP\/\d(?:\.\d)?|ICY) 200\b/.test(status) ? `answer ${JSON.stringify(status)}`
    : kind === null ? `${data.length} bytes but neither Ogg pages nor MP3 frames` : undefined;
  return { ...result(`curl --http${o.http ?? '1.1'} (${status}, ${kind ?? '-'})`, kind === null ? 0 : data.length, [], r.output, o, fail), status };
}

export interface IcyResult extends ListenResult {
  /** The status line, e.g. "HTTP/1.0 200 OK" or "ICY 200 OK". */
  status: string;
  headers: Record<string, string>;
  /** icy-metaint, or null when the server sent none (Icecast 2.4 sends none for Ogg). */
  metaint: number | null;
  /** Every metadata block was well formed and the audio between them is unbroken Ogg pages or MP3 frames. */
  consistent: boolean;
  /** Why consistent is false. */
  problem?: string;
  /** Number of non-empty metadata blocks. */
  blocks: number;
}

/**
 * A raw HTTP/1.0 listener asking for `Icy-MetaData: 1`: takes the
 * icy-metaint framing apart byte for byte (metaint audio bytes, one length
 * byte L, L*16 bytes of metadata) and checks both the metadata text and that
 * the audio left over is one unbroken run of MP3 frames or Ogg pages, which
 * an off-by-one in the server's framing would break.
 */
export async function icyListen(url: string, o: ListenOptions = {}): Promise<IcyResult> {
  const u = new URL(url);
  const raw = await new Promise<Buffer>((resolve) => {
    const chunks: Buffer[] = [];
    const sock = connect(Number(u.port || 80), u.hostname);
    const done = (): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(done, seconds(o) * 1000);
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('close', done);
    sock.on('error', done);
    sock.on('connect', () => {
      const auth = u.username !== '' ? `Authorization: Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}\r\n` : '';
      sock.write(`GET ${u.pathname}${u.search} HTTP/1.0\r\nHost: ${u.host}\r\nUser-Agent: radioai-icy-test/1.0\r\nIcy-MetaData: 1\r\n${auth}\r\n`);
    });
  });
  const end = raw.indexOf('\r\n\r\n');
  const headText = raw.subarray(0, end < 0 ? raw.length : end).toString('latin1');
  const [status = '', ...lines] = headText.split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const body = end < 0 ? Buffer.alloc(0) : raw.subarray(end + 4);
  const metaint = headers['icy-metaint'] !== undefined ? Number(headers['icy-metaint']) : null;
  const base = { status, headers, metaint, output: tail(headText) };
  if (!/^(?:HTTP\/1\.[01]|ICY) 200\b/.test(status)) {
    return { ...result('icy', 0, [], headText, o, `answer ${JSON.stringify(status)}`), ...base, consistent: false, problem: 'no 200', blocks: 0 };
  }
  const d = metaint !== null && metaint > 0 ? deframe(body, metaint) : { audio: body, texts: [], problem: undefined };
  const titles = uniq(d.texts.flatMap((t) => all(/StreamTitle='(.*?)';/g, t)));
  const kind = (headers['content-type'] ?? '').includes('ogg') ? 'ogg' : audioKind(d.audio) ?? 'mp3';
  const problem = d.problem ?? unbroken(d.audio, kind);
  const res = result(`icy (metaint ${metaint ?? 'none'}, ${kind})`, d.audio.length, titles, headText, o, problem);
  return { ...res, ...base, consistent: problem === undefined, ...(problem !== undefined ? { problem } : {}), blocks: d.texts.length };
}

/** Splits an ICY body into audio and metadata texts; problem says where a block was malformed. */
function deframe(body: Buffer, metaint: number): { audio: Buffer; texts: string[]; problem: string | undefined } {
  const audio: Buffer[] = [];
  const texts: string[] = [];
  let problem: string | undefined;
  let i = 0;
  while (i < body.length) {
    const n = Math.min(metaint, body.length - i);
    audio.push(body.subarray(i, i + n));
    i += n;
    if (i >= body.length) break;
    const len = body[i]! * 16;
    const at = i;
    i++;
    if (i + len > body.length) break; // cut off by the end of listening
    if (len > 0) {
      const text = decodeLines(body.subarray(i, i + len)).replace(/\0+$/, '');
      texts.push(text);
      // Icecast writes StreamTitle='...'; (and maybe StreamUrl='...';), padded with NULs to a multiple of 16.
      if (problem === undefined && !/^(?:[A-Za-z]+='[^\0]*?';)+$/.test(text)) {
        problem = `malformed metadata block (${len} bytes) at body offset ${at}: "${text.slice(0, 40).replace(/[^\x20-\x7e]/g, '.')}"`;
      }
    }
    i += len;
  }
  return { audio: Buffer.concat(audio), texts, problem };
}

/**
 * Undefined when `buf` is one chain of MP3 frames or Ogg pages from the
 * first found to (nearly) the end; a listener may join mid-frame, and the
 * last frame may be cut off when listening stops.
 */
function unbroken(buf: Buffer, kind: Format): string | undefined {
  if (kind === 'mp3') {
    const frames = mp3Frames(buf);
    if (frames.length < 3) return 'no MP3 frames';
    for (let k = 1; k < frames.length; k++) {
      const prev = frames[k - 1]!;
      if (frames[k]!.offset !== prev.offset + prev.length) return `MP3 frames break at audio byte ${prev.offset + prev.length}`;
    }
    const last = frames[frames.length - 1]!;
    if (buf.length - (last.offset + last.length) > 1441) return `MP3 frames stop at audio byte ${last.offset + last.length} of ${buf.length}`;
    return undefined;
  }
  let at = buf.indexOf('OggS');
  if (at < 0) return 'no Ogg pages';
  let pages = 0;
  while (at + 27 <= buf.length) {
    if (buf.toString('latin1', at, at + 4) !== 'OggS' || buf[at + 4] !== 0) return `Ogg pages break at audio byte ${at}`;
    const segs = buf[at + 26]!;
    if (at + 27 + segs > buf.length) break;
    let size = 27 + segs;
    for (let s = 0; s < segs; s++) size += buf[at + 27 + s]!;
    at += size;
    pages++;
  }
  return pages >= 2 ? undefined : 'fewer than two Ogg pages';
}

// ---------------------------------------------------------------- browser

export interface BrowserResult {
  ok: boolean;
  /** audio.currentTime when the check ended, s. */
  currentTime: number;
  error?: string;
  evidence: string;
}

export interface BrowserOptions {
  /** currentTime needed for ok (default 2 s). */
  seconds?: number;
  /** Put `crossorigin="anonymous"` on the element, so the stream must answer with CORS headers. */
  crossOrigin?: boolean;
  /** Give up after this long (default 20 s). */
  timeoutMs?: number;
}

/**
 * The Chromium binary: Debian's headless shell if installed, else full
 * Chromium in --headless mode. The real binary, not /usr/bin's wrapper: the
 * headless shell's wrapper runs it without exec, so ending the wrapper's PID
 * would leave the browser running.
 */
function chromium(): { cmd: string; args: string[] } {
  if (existsSync('/usr/lib/chromium/chromium-headless-shell')) return { cmd: '/usr/lib/chromium/chromium-headless-shell', args: [] };
  if (existsSync('/usr/lib/chromium/chromium')) return { cmd: '/usr/lib/chromium/chromium', args: ['--headless'] };
  return { cmd: haveProgram('chromium-headless-shell') ? 'chromium-headless-shell' : 'chromium', args: ['--headless'] };
}

/** A DevTools protocol connection: commands by id, sessions flattened onto the browser socket. */
class Cdp {
  readonly #ws: WebSocket;
  #next = 1;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.addEventListener('message', (ev: MessageEvent) => {
      if (typeof ev.data !== 'string') return;
      const msg: unknown = JSON.parse(ev.data);
      const id = field(msg, 'id');
      if (typeof id !== 'number') return; // an event; nothing here waits for events
      const p = this.#pending.get(id);
      this.#pending.delete(id);
      const err = field(msg, 'error');
      if (err !== undefined) p?.reject(new Error(`DevTools: ${String(field(err, 'message'))}`));
      else p?.resolve(field(msg, 'result'));
    });
    ws.addEventListener('close', () => {
      for (const p of this.#pending.values()) p.reject(new Error('DevTools connection closed'));
      this.#pending.clear();
    });
  }

  static open(url: string): Promise<Cdp> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.addEventListener('open', () => resolve(new Cdp(ws)));
      ws.addEventListener('error', () => reject(new Error(`cannot connect to ${url}`)));
    });
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<unknown> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#ws.send(JSON.stringify({ id, method, params, ...(sessionId !== undefined ? { sessionId } : {}) }));
    });
  }

  close(): void {
    this.#ws.close();
  }
}

function page(url: string, crossOrigin: boolean): string {
  // The element reports its own errors; the test reads state() over DevTools.
  return `<!doctype html><meta charset="utf-8"><title>radioai audio</title>
<audio id="a" preload="none" ${crossOrigin ? 'crossorigin="anonymous"' : ''} src="${url.replace(/&/g, '&amp;').replace(/"/g, '&quot;')}"></audio>
<script>
const a = document.getElementById('a');
let err = null;
a.addEventListener('error', () => { err = 'media error ' + (a.error ? a.error.code + ' ' + a.error.message : '?'); });
a.play().catch((e) => { err = err || ('play(): ' + e.name + ': ' + e.message); });
window.state = () => JSON.stringify({ t: a.currentTime, err, ready: a.readyState, network: a.networkState });
</script>`;
}

/** A page open in headless Chromium, driven over the DevTools protocol. */
export interface BrowserPage {
  /** The value of `expression` in the page (a promise is awaited); `gesture` runs it as if the user had clicked. */
  evaluate(expression: string, gesture?: boolean): Promise<unknown>;
  /** A PNG of what the page shows, saved to `file`. */
  screenshot(file: string): Promise<void>;
}

/**
 * Opens `url` in a fresh headless Chromium (its own profile directory),
 * runs `use` on the page, and ends the browser by PID whatever happens.
 */
export async function inBrowser<T>(url: string, use: (page: BrowserPage) => Promise<T>): Promise<T> {
  const dir = tempDir('chromium');
  const { cmd, args } = chromium();
  const browser = run(cmd, [...args, '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
    '--no-default-browser-check', '--autoplay-policy=no-user-gesture-required', `--user-data-dir=${dir}`, '--window-size=1000,1100',
    '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0', 'about:blank']);
  let cdp: Cdp | null = null;
  try {
    const ws = await waitFor(() => /DevTools listening on (ws:\/\/\S+)/.exec(browser.output())?.[1], 20_000, 'Chromium DevTools');
    const c = (cdp = await Cdp.open(ws));
    const target = await c.send('Target.createTarget', { url });
    const attached = await c.send('Target.attachToTarget', { targetId: field(target, 'targetId'), flatten: true });
    const sessionId = String(field(attached, 'sessionId'));
    return await use({
      evaluate: async (expression, gesture = false) => {
        const ev = await c.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true, userGesture: gesture }, sessionId);
        const thrown = field(ev, 'exceptionDetails');
        if (thrown !== undefined) throw new Error(`in the page: ${String(field(field(thrown, 'exception'), 'description') ?? field(thrown, 'text'))}`);
        return field(field(ev, 'result'), 'value');
      },
      screenshot: async (file) => {
        const shot = await c.send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true }, sessionId);
        writeFileSync(file, Buffer.from(String(field(shot, 'data')), 'base64'));
      },
    });
  } finally {
    cdp?.close();
    // SIGTERM lets Chromium take its renderer and GPU processes down with it.
    killPid(browser.pid, 'SIGTERM');
    const ended = await Promise.race([browser.exited, new Promise((r) => setTimeout(() => r(null), 3000))]);
    if (ended === null) killPid(browser.pid, 'SIGKILL');
    await browser.exited;
  }
}

/**
 * Headless Chromium plays `url` in an <audio> element of a page from another
 * origin (a node:http server on its own port), driven over the DevTools
 * protocol; ok when audio.currentTime reaches `seconds`. A media error or
 * rejected play() ends the check early.
 */
export async function browserPlays(url: string, o: BrowserOptions = {}): Promise<BrowserResult> {
  const need = o.seconds ?? 2;
  const html = page(url, o.crossOrigin ?? false);
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(html);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const pagePort = (server.address() as { port: number }).port;
  let last = { t: 0, err: null as string | null, ready: 0, network: 0 };
  try {
    await inBrowser(`http://127.0.0.1:${pagePort}/`, async (p) => {
      const deadline = Date.now() + (o.timeoutMs ?? 20_000);
      while (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        const value = await p.evaluate('typeof state === "function" ? state() : ""');
        if (typeof value !== 'string' || value === '') continue; // page not loaded yet
        const s: unknown = JSON.parse(value);
        last = { t: Number(field(s, 't')), err: (field(s, 'err') as string | null) ?? null, ready: Number(field(s, 'ready')), network: Number(field(s, 'network')) };
        if (last.err !== null || last.t >= need) break;
      }
    });
  } catch (e) {
    last.err ??= e instanceof Error ? e.message : String(e);
  } finally {
    server.close();
  }
  const ok = last.err === null && last.t >= need;
  const evidence = `chromium: currentTime ${last.t.toFixed(2)} s (need ${need}), readyState ${last.ready}, networkState ${last.network}${last.err !== null ? `, ${last.err}` : ''}`;
  return { ok, currentTime: last.t, ...(last.err !== null ? { error: last.err } : {}), evidence };
}
