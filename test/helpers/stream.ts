/**
 * Real sources and listeners for stream tests: ffmpeg as a steady 128 kbit/s
 * Ogg Vorbis source (FACTS.md: min/max rate keep a sine wave at full rate),
 * and a raw HTTP listener that counts bytes and recognises Ogg pages and
 * MP3 frames.
 */
import { get, type ClientRequest } from 'node:http';
import { run, type Proc } from './processes.ts';

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
  status = 0;
  contentType = '';
  ended = false;
  error: Error | null = null;
  #chunks: Buffer[] = [];
  #kept = 0;
  readonly #req: ClientRequest;

  constructor(url: string, keep = 1 << 20) {
    this.#req = get(url, { agent: false }, (res) => {
      this.status = res.statusCode ?? 0;
      this.contentType = String(res.headers['content-type'] ?? '');
      res.on('data', (d: Buffer) => {
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
  for (let start = 0; start < buf.length - 4; start++) {
    let f = at(start);
    if (!f) continue;
    const run: Mp3Frame[] = [];
    while (f) {
      run.push(f);
      f = at(f.offset + f.length);
    }
    if (run.length >= 3) {
      frames.push(...run);
      break;
    }
  }
  return frames;
}
