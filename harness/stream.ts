/**
 * Real sources and listeners for stream tests: ffmpeg as a steady 128 kbit/s
 * Ogg Vorbis source (min/max rate keep a sine wave at full rate; plain VBR encodes it to a few kB/s),
 * and a raw HTTP listener that counts bytes and recognises Ogg pages and
 * MP3 frames.
 */
import { get, type ClientRequest } from 'node:http';
import { get as httpsGet, type RequestOptions } from 'node:https';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitFor } from './net.ts';
import { run, tempDir, type Proc } from './components.ts';

export function ffmpegSource(url: string, frequency = 440): Proc {
  return run('ffmpeg', [
    '-nostdin', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', `sine=frequency=${frequency}:sample_rate=44100`,
    '-c:a', 'libvorbis', '-b:a', '128k', '-minrate', '128k', '-maxrate', '128k',
    '-content_type', 'application/ogg', '-f', 'ogg', url,
  ]);
}

export function icecastUrl(user: string, password: string, host: string, port: number, mount: string): string {
  return `icecast://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}${mount}`;
}

export class Listener {
  bytes = 0;
  /** Longest pause between two pieces of data, ms (after the first). */
  maxGapMs = 0;
  #lastAt = 0;
  status = 0;
  contentType = '';
  ended = false;
  error: Error | null = null;
  #chunks: Buffer[] = [];
  #kept = 0;
  readonly #req: ClientRequest;

  /** `tls`: options for an https:// URL (ca, lookup, servername). */
  constructor(url: string, keep = 1 << 20, tls: RequestOptions = {}) {
    const open = url.startsWith('https:') ? httpsGet : get;
    this.#req = open(url, { agent: false, ...tls }, (res) => {
      this.status = res.statusCode ?? 0;
      this.contentType = String(res.headers['content-type'] ?? '');
      res.on('data', (d: Buffer) => {
        const now = Date.now();
        if (this.#lastAt > 0) this.maxGapMs = Math.max(this.maxGapMs, now - this.#lastAt);
        this.#lastAt = now;
        this.bytes += d.length;
        if (this.#kept < keep) {
          this.#chunks.push(d);
          this.#kept += d.length;
        }
      });
      res.on('end', () => (this.ended = true));
      res.on('error', (e) => (this.error = e));
    });
    this.#req.on('error', (e) => {
      this.error = e;
      this.ended = true;
    });
  }

  data(): Buffer {
    return Buffer.concat(this.#chunks);
  }

  /** Unix ms of the last data received (0: none yet). */
  get lastAt(): number {
    return this.#lastAt;
  }

  /** Starts measuring maxGapMs afresh (from the next piece of data). */
  resetGap(): void {
    this.maxGapMs = 0;
  }

  close(): void {
    this.#req.destroy();
  }
}

/** Number of Ogg page headers ("OggS", version 0) in `buf`. */
export function oggPages(buf: Buffer): number {
  let n = 0;
  for (let i = buf.indexOf('OggS'); i >= 0 && i + 5 <= buf.length; i = buf.indexOf('OggS', i + 4)) if (buf[i + 4] === 0) n++;
  return n;
}

const MP3_BITRATES_V1_L3 = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
const MP3_RATES_V1 = [44100, 48000, 32000];

export interface Mp3Frame {
  offset: number;
  bitrate: number;
  samplerate: number;
  length: number;
}

/**
 * Walks MPEG-1 Layer III frames from the first sync word: each header is
 * checked and the next frame must start where the header says this one ends,
 * so random bytes that look like a sync word are not counted.
 */
export function mp3Frames(buf: Buffer): Mp3Frame[] {
  const frames: Mp3Frame[] = [];
  const at = (i: number): Mp3Frame | null => {
    if (i + 4 > buf.length || buf[i] !== 0xff || (buf[i + 1]! & 0xfe) !== 0xfa) return null; // MPEG-1, Layer III
    const bitrate = MP3_BITRATES_V1_L3[buf[i + 2]! >> 4];
    const samplerate = MP3_RATES_V1[(buf[i + 2]! >> 2) & 3];
    if (!bitrate || !samplerate) return null;
    const padding = (buf[i + 2]! >> 1) & 1;
    return { offset: i, bitrate, samplerate, length: Math.floor((144 * bitrate * 1000) / samplerate) + padding };
  };
  // Runs of at least three chained frames count; after a break (a resumed stream) look again.
  for (let start = 0; start < buf.length - 4;) {
    let f = at(start);
    if (!f) {
      start++;
      continue;
    }
    const run: Mp3Frame[] = [];
    while (f) {
      run.push(f);
      f = at(f.offset + f.length);
    }
    if (run.length >= 3) {
      frames.push(...run);
      const last = run[run.length - 1]!;
      start = last.offset + last.length;
    } else start++;
  }
  return frames;
}

/** ffmpeg's generic HTTP output as a PUT source with chunked encoding (what HTTP_PORT takes). */
export function ffmpegPutSource(url: string, frequency = 440): Proc {
  return run('ffmpeg', [
    '-nostdin', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', `sine=frequency=${frequency}:sample_rate=44100`,
    '-c:a', 'libvorbis', '-b:a', '128k', '-minrate', '128k', '-maxrate', '128k',
    '-f', 'ogg', '-method', 'PUT', '-auth_type', 'basic', '-content_type', 'application/ogg', url,
  ]);
}

/** A 128 kbit/s MP3 source over ffmpeg's icecast:// protocol (PUT without length). */
export function ffmpegMp3Source(url: string): Proc {
  return run('ffmpeg', [
    '-nostdin', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'sine=frequency=330:sample_rate=44100',
    '-c:a', 'libmp3lame', '-b:a', '128k', '-content_type', 'audio/mpeg', '-f', 'mp3', url,
  ]);
}

/**
 * A source that comes back: restarts its process whenever it exits (as a
 * real source client reconnects), until stop().
 */
export class KeepSource {
  #proc: Proc | null = null;
  #stopped = false;
  starts = 0;
  readonly #make: () => Proc;

  constructor(make: () => Proc) {
    this.#make = make;
    this.#spawn();
  }

  #spawn(): void {
    if (this.#stopped) return;
    this.starts++;
    const p = this.#make();
    this.#proc = p;
    void p.exited.then(() => {
      if (!this.#stopped) setTimeout(() => this.#spawn(), 300);
    });
  }

  get pid(): number | null {
    return this.#proc?.pid ?? null;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#proc?.kill('SIGKILL');
  }
}

/** Sends `text` to host:port a few bytes at a time and returns everything read until `until` matches or the timeout. */
export async function rawExchange(host: string, port: number, text: Buffer | string, o: { pieces?: number; delayMs?: number; until?: (got: Buffer) => boolean; timeoutMs?: number } = {}): Promise<Buffer> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const sock = connect(port, host);
    const chunks: Buffer[] = [];
    const done = (): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(done, o.timeoutMs ?? 5000);
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      if (o.until?.(Buffer.concat(chunks))) done();
    });
    sock.on('close', done);
    sock.on('error', done);
    sock.on('connect', () => {
      const buf = Buffer.from(text);
      const size = Math.max(1, Math.ceil(buf.length / (o.pieces ?? 1)));
      let i = 0;
      const next = (): void => {
        if (i >= buf.length || sock.destroyed) return;
        sock.write(buf.subarray(i, i + size));
        i += size;
        setTimeout(next, o.delayMs ?? 0);
      };
      next();
    });
  });
}

/** A plain Icecast server on 127.0.0.1, as an external station whose stream a relay mount pulls. */
export interface Station {
  proc: Proc;
  port: number;
  /** A steady Ogg source on `mount` (source password "station"). */
  source(mount: string, frequency?: number): Proc;
}

export async function startStation(): Promise<Station> {
  const dir = tempDir('station');
  const port = await freePort();
  const xml = join(dir, 'station.xml');
  writeFileSync(xml, `<icecast><limits><sources>4</sources></limits>
<authentication><source-password>station</source-password><admin-password>station</admin-password></authentication>
<listen-socket><port>${port}</port><bind-address>127.0.0.1</bind-address></listen-socket>
<paths><logdir>${dir}</logdir><webroot>/usr/share/icecast2/web</webroot><adminroot>/usr/share/icecast2/admin</adminroot></paths>
<logging><errorlog>-</errorlog><loglevel>1</loglevel></logging>
<security><chroot>0</chroot><changeowner><user>nobody</user><group>nogroup</group></changeowner></security></icecast>`);
  await run('chown', ['-R', 'nobody:nogroup', dir]).exited;
  const proc = run('icecast2', ['-c', xml]);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/`).catch(() => null))?.status, 10_000, 'the external station');
  return {
    proc,
    port,
    source: (mount, frequency = 660) => ffmpegSource(icecastUrl('source', 'station', '127.0.0.1', port, mount), frequency),
  };
}
