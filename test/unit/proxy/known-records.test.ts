/**
 * The records native code keeps of the redirects it answered, for the
 * listener log: seven length-prefixed fields each, read back whole; a
 * record cut short (never written so, but read defensively) ends the list.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseKnownRecords } from '../../../src/proxy/known-answers.ts';

function record(fields: string[]): Buffer {
  return Buffer.concat(fields.map((f) => {
    const b = Buffer.from(f, 'latin1');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    return Buffer.concat([len, b]);
  }));
}

describe('known-answer records', () => {
  it('reads every field of every record, empty ones included', () => {
    const buf = Buffer.concat([
      record(['1795000000123', 'GET', '127.0.0.9', '/live.mp3?x=1', 'http://example.test/', 'VLC/3.0', '203.0.113.9']),
      record(['1795000000124', 'HEAD', '::1', '/live.mp3', '', '', '']),
    ]);
    assert.deepEqual(parseKnownRecords(buf), [
      { at: 1795000000123, method: 'GET', peer: '127.0.0.9', target: '/live.mp3?x=1', referer: 'http://example.test/', userAgent: 'VLC/3.0', forwarded: '203.0.113.9' },
      { at: 1795000000124, method: 'HEAD', peer: '::1', target: '/live.mp3', referer: '', userAgent: '', forwarded: '' },
    ]);
  });

  it('stops at a record cut short, keeping the whole ones before it', () => {
    const whole = record(['1', 'GET', 'a', '/m.ogg', '', '', '']);
    const cut = record(['2', 'GET', 'b', '/m.ogg', 'ref', 'ua', 'xff']);
    for (const n of [1, 2, 5, cut.length - 1]) {
      assert.equal(parseKnownRecords(Buffer.concat([whole, cut.subarray(0, n)])).length, 1, `cut at ${n}`);
    }
    assert.deepEqual(parseKnownRecords(Buffer.alloc(0)), []);
  });
});
