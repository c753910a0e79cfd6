/**
 * The thread messages: every kind survives the structured clone both ways
 * and is recognised on receipt, and anything malformed is dropped (null),
 * never half-taken. The workers' settings are one slice of the
 * configuration.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../../src/config/load-config.ts';
import { WORKER_SETTINGS, parseFromWorker, parseToWorker, workerSettings, type FromWorker, type ToWorker } from '../../../src/ipc/messages.ts';

const toWorker: ToWorker[] = [
  { type: 'SHUTDOWN' },
  { type: 'LATENCY_SUMMARY', json: '{"node":"a"}' },
  { type: 'CRASH', kind: 'timer' },
  { type: 'SESSIONS', req: 7, path: '/live.ogg' },
  { type: 'SESSIONS', req: 8, path: null },
  { type: 'LIVE_STATUS', json: '{"mounts":[]}' },
  { type: 'TLS', cert: '-----BEGIN CERTIFICATE-----', key: '-----BEGIN PRIVATE KEY-----' },
];

const fromWorker: FromWorker[] = [
  { type: 'READY', id: 0, listening: ['127.0.0.1:80'] },
  { type: 'LISTEN_FAILED', id: 1, code: 'RADIOAI_ERR_BIND', message: 'taken' },
  { type: 'CLOSED', id: 0 },
  { type: 'FATAL', id: 1, message: 'Error: boom' },
  { type: 'LATENCY', id: 0, histograms: { redirect_us: 'HISTFAAA' } },
  { type: 'ACCESS', id: 1, lines: '203.0.113.7 a - [22/Nov/2026:08:01:02 +0000] "GET / HTTP/1.1" 200 10 "-" "VLC" 2\n', count: 1, dropped: 0 },
  { type: 'SESSIONS', id: 0, req: 7, sessions: [{ path: '/live.ogg', address: '203.0.113.7', userAgent: 'mpv', since: 5 }] },
];

describe('thread messages', () => {
  it('come through a structured clone and are recognised, both ways', () => {
    for (const m of toWorker) assert.deepEqual(parseToWorker(structuredClone(m)), m);
    for (const m of fromWorker) assert.deepEqual(parseFromWorker(structuredClone(m)), m);
  });

  it('are dropped when malformed, never half-taken', () => {
    const bad: unknown[] = [null, 7, 'SHUTDOWN', {}, { type: 'NOPE' }, { type: 'CRASH', kind: 'rm -rf' }, { type: 'SESSIONS', req: '7', path: null },
      { type: 'TLS', cert: 1, key: 'k' }, { type: 'LIVE_STATUS' }];
    for (const m of bad) assert.equal(parseToWorker(m), null, JSON.stringify(m));
    const badFrom: unknown[] = [{ type: 'READY', listening: [] }, { type: 'ACCESS', id: 0, lines: 'half a line', count: 1, dropped: 0 }, { type: 'ACCESS', id: 0, entries: [{ at: 'x' }], dropped: 0 },
      { type: 'SESSIONS', id: 0, req: 1, sessions: [{ path: 1 }] }, { type: 'LATENCY', id: 0, histograms: { redirect_us: 5 } }];
    for (const m of badFrom) assert.equal(parseFromWorker(m), null, JSON.stringify(m));
  });

  it('give a worker exactly the slice of the settings the contract names', async () => {
    const config = await loadConfig(['--domain', 'radio.test', '--public-ip', '127.0.0.1', '--config', '/dev/null'], { env: {} });
    const s = workerSettings(config);
    assert.deepEqual(Object.keys(s).sort(), [...WORKER_SETTINGS].sort());
    for (const k of WORKER_SETTINGS) assert.deepEqual(s[k], config[k]);
    assert.ok(!('etcdKey' in s) && !('etcdServer' in s), 'nothing about etcd reaches a worker');
    assert.deepEqual(structuredClone(s), s);
  });
});
