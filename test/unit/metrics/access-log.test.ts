/** Listener log lines on their own: the combined format, escaping, and whose X-Forwarded-For is believed. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accessLine, quoted } from '../../../src/proxy/access-line.ts';
import { clientAddress, plain, trustedProxies } from '../../../src/proxy/access-record.ts';

describe('listener log lines', () => {
  it('are combined-format lines with the node and the seconds, and what a client sent cannot forge one', () => {
    const line = accessLine({ at: Date.UTC(2026, 10, 22, 8, 1, 2), address: '203.0.113.7', request: 'GET /live.ogg HTTP/1.1', status: 200, bytes: 1843200, referer: '', userAgent: 'VLC/3.0.18 LibVLC/3.0.18', seconds: 114.6 }, 'node1');
    assert.equal(line, '203.0.113.7 node1 - [22/Nov/2026:08:01:02 +0000] "GET /live.ogg HTTP/1.1" 200 1843200 "-" "VLC/3.0.18 LibVLC/3.0.18" 115\n');
    assert.equal(quoted('a"b\\c\r\n1.2.3.4 - - [x] "GET /'), '"a\\"b\\\\c\\x0d\\x0a1.2.3.4 - - [x] \\"GET /"');
  });

  it('believe X-Forwarded-For only from trusted proxies, back to the first address that is not one', () => {
    const t = trustedProxies(['10.0.0.0/8', '192.0.2.1', '2001:db8::/32']);
    assert.equal(clientAddress('198.51.100.9', '203.0.113.7', t), '198.51.100.9');
    assert.equal(clientAddress('10.1.2.3', '203.0.113.7', t), '203.0.113.7');
    assert.equal(clientAddress('::ffff:10.1.2.3', '6.6.6.6, 203.0.113.7, 192.0.2.1', t), '203.0.113.7');
    assert.equal(clientAddress('2001:db8::5', 'not-an-address', t), '2001:db8::5');
    assert.equal(clientAddress('10.1.2.3', undefined, t), '10.1.2.3');
    assert.equal(plain('0000:0000:0000:0000:0000:ffff:7f00:0001'), '127.0.0.1');
  });
});
