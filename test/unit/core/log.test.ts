/** radiod's own log lines, on their own: the journal's priority prefix, JSON, one event a line. */
import assert from 'node:assert/strict';
import { closeSync, openSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { formatLine, isJournalStream } from '../../../src/core/log.ts';
import { tempDir } from '../../../harness/process.ts';

describe('log line shapes', () => {
  const at = new Date(Date.UTC(2026, 10, 22, 8, 0, 0));
  it('carry the syslog priority for the journal, and keep one event on one line', () => {
    assert.equal(formatLine({ format: 'text', journal: false }, 'warn', 'etcd', 'unreachable', at), 'WARN etcd: unreachable\n');
    assert.equal(formatLine({ format: 'text', journal: true }, 'warn', 'etcd', 'unreachable', at), '<4>WARN etcd: unreachable\n');
    assert.equal(formatLine({ format: 'text', journal: true }, 'error', 'icecast', 'a\nb', at), '<3>ERROR icecast: a | b\n');
    assert.equal(formatLine({ format: 'text', journal: true }, 'info', 'radiod', 'ready', at), '<6>INFO radiod: ready\n');
  });
  it('are one JSON object a line in json, whatever the message holds', () => {
    const line = formatLine({ format: 'json', journal: false }, 'error', 'sources', 'line one\n"two"', at);
    assert.equal(line.split('\n').length, 2);
    assert.deepEqual(JSON.parse(line), { time: '2026-11-22T08:00:00.000Z', level: 'error', priority: 3, component: 'sources', msg: 'line one\n"two"' });
    assert.match(formatLine({ format: 'json', journal: true }, 'debug', 'x', 'y', at), /^<7>\{/);
  });
  it('take JOURNAL_STREAM only when it names the stream they go to', () => {
    const file = join(tempDir('journal'), 'stderr');
    writeFileSync(file, '');
    const fd = openSync(file, 'r');
    try {
      const st = statSync(file);
      assert.equal(isJournalStream(`${st.dev}:${st.ino}`, fd), true);
      assert.equal(isJournalStream(`${st.dev}:${st.ino + 1}`, fd), false);
      assert.equal(isJournalStream('garbage', fd), false);
      assert.equal(isJournalStream(undefined, fd), false);
    } finally {
      closeSync(fd);
    }
  });
});
