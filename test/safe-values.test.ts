/**
 * The whitelists of generated liquidsoap scripts and Icecast configurations:
 * each kind of value accepts what radiod writes and refuses the rest, and a
 * script is not rendered at all when one of its values fails.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderTranscodeScript, str, type TranscodeScriptInput } from '../src/icecast/liquidsoap-script.ts';
import {
  safeCredential, safeFilePath, safeHost, safeInteger, safeIp, safeMountPath, safePort, safeRelayCredential, safeTranscode, safeUrlPath,
} from '../src/icecast/safe-values.ts';
import type { Transcode } from '../src/state/mount-record.ts';

const refused = (f: () => unknown): void => {
  assert.throws(f, (err: Error & { code?: string }) => err.code === 'RADIOAI_ERR_UNSAFE_VALUE');
};

const INTERPOLATION = "#{process.read('touch /tmp/x; echo')}";

describe('whitelists', () => {
  it('hosts: IP addresses and DNS names', () => {
    for (const h of ['10.0.0.1', '::1', '2001:db8::5', 'icecast.example.org', 'node-1']) assert.equal(safeHost(h), h);
    for (const h of [INTERPOLATION, 'a b', 'h"x', '', 'x'.repeat(300), '-bad.example', 42, null, 'a..b']) refused(() => safeHost(h));
    assert.equal(safeIp('127.0.21.1'), '127.0.21.1');
    refused(() => safeIp('example.org'));
  });

  it('ports: whole numbers from 1 to 65535', () => {
    for (const p of [1, 8000, 65535]) assert.equal(safePort(p), p);
    for (const p of [0, 65536, 80.5, -1, NaN, Infinity, '8000', 'int_of_string(process.read("id"))', null]) refused(() => safePort(p));
    assert.equal(safeInteger(5, 0, 10, 'n'), 5);
    refused(() => safeInteger(11, 0, 10, 'n'));
  });

  it('mount paths: the mount-path rule', () => {
    for (const m of ['/live.ogg', '/a/b-c_d~e.mp3']) assert.equal(safeMountPath(m), m);
    for (const m of ['live', '/a b', '/#{x}', '/../x', '/a"b', '/x.m3u', 7]) refused(() => safeMountPath(m));
  });

  it('credentials: A-Z a-z 0-9 . _ ~ -; relay credentials: printable text', () => {
    assert.equal(safeCredential('src-0a1b_C.~'), 'src-0a1b_C.~');
    for (const c of ['', 'a b', 'p"w', INTERPOLATION, 'x'.repeat(129), '<&>']) refused(() => safeCredential(c));
    assert.equal(safeRelayCredential('p@ss w<o>rd&'), 'p@ss w<o>rd&');
    for (const c of ['a\nb', 'a\u0000', 'x'.repeat(257)]) refused(() => safeRelayCredential(c));
  });

  it('URL paths and file paths', () => {
    assert.equal(safeUrlPath('/live?x=1&y=%20'), '/live?x=1&y=%20');
    for (const p of ['live', '/a b', '/a"b', '/a<b', '/a{b}']) refused(() => safeUrlPath(p));
    assert.equal(safeFilePath('/var/lib/radioai/icecast/log'), '/var/lib/radioai/icecast/log');
    for (const p of ['relative', '/a b', '/a<b>', '/a&b']) refused(() => safeFilePath(p));
  });

  it('encoder parameters: a codec of the fixed set and numbers in range', () => {
    const t: Transcode = { source: '/live.ogg', codec: 'mp3', bitrate: 64, samplerate: 44100, channels: 2, quality: null };
    assert.deepEqual(safeTranscode(t, '/out.mp3'), t);
    const bad: Partial<Record<keyof Transcode, unknown>>[] = [
      { codec: 'flac' }, { codec: 'mp3"); process.run("id' }, { bitrate: '64' }, { bitrate: 4 }, { bitrate: 64.5 }, { samplerate: 1 },
      { channels: 3 }, { quality: 'best' }, { quality: Infinity }, { quality: 12 }, { source: INTERPOLATION }, { source: '/out.mp3' },
    ];
    for (const over of bad) refused(() => safeTranscode({ ...t, ...over } as Transcode, '/out.mp3'));
  });

  it('liquidsoap string literals hold only whitelisted characters', () => {
    assert.equal(str('http://[::1]:8001/live.ogg'), '"http://[::1]:8001/live.ogg"');
    for (const s of [INTERPOLATION, 'a"b', 'a\\b', 'a\nb', 'a b', '#', '{']) refused(() => str(s));
  });
});

describe('transcoding scripts', () => {
  const ok: TranscodeScriptInput = {
    transcode: { source: '/live.ogg', codec: 'vorbis', bitrate: 96, samplerate: 44100, channels: 2, quality: 4 },
    input: { host: '10.0.0.1', port: 8001 }, output: { host: '10.0.0.1', port: 8001 },
    mount: '/out.ogg', username: 'src-1', password: 'pw_1',
  };

  it('renders a script from whitelisted values', () => {
    const s = renderTranscodeScript(ok);
    assert.match(s, /input\.http\("http:\/\/10\.0\.0\.1:8001\/live\.ogg"\)/);
    assert.match(s, /%vorbis\(samplerate=44100, channels=2, quality=0\.40\)/);
    assert.match(s, /host="10\.0\.0\.1", port=8001, user="src-1", password="pw_1", mount="\/out\.ogg"/);
  });

  const hostile: [string, Partial<TranscodeScriptInput>][] = [
    ['a source host with interpolation', { input: { host: INTERPOLATION, port: 8001 } }],
    ['an output host with a quote', { output: { host: '10.0.0.1", port=1, x="', port: 8001 } }],
    ['a port carrying code', { output: { host: '10.0.0.1', port: 'int_of_string(process.read("id"))' as unknown as number } }],
    ['a password with interpolation', { password: INTERPOLATION }],
    ['a user name with a newline', { username: 'a\nsettings.init.allow_root.set(true)' }],
    ['a mount with interpolation', { mount: '/#{x}' }],
    ['an unknown codec', { transcode: { ...ok.transcode, codec: 'x' as 'mp3' } }],
  ];
  for (const [what, over] of hostile) {
    it(`refuses the whole script for ${what}`, () => refused(() => renderTranscodeScript({ ...ok, ...over })));
  }
});
