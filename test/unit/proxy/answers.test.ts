/**
 * The public ports' own answers come from one table: each has a status the
 * ports know how to say and a text ending in a newline; each is used; no
 * door, router or hub writes a status and text of its own; and
 * docs/errors.md lists every one with its status.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../../../harness/process.ts';
import { BUSY_ANSWER } from '../../../src/proxy/conn-limits.ts';
import { REASONS, REPLIES, replyText, say } from '../../../src/proxy/answers.ts';

const proxy = readdirSync(join(ROOT, 'src/proxy')).filter((f) => f.endsWith('.ts') && f !== 'answers.ts')
  .map((f) => [f, readFileSync(join(ROOT, 'src/proxy', f), 'utf8')] as const);

describe('the answers table', () => {
  it('has statuses the ports can say and texts of one line, with at most one placeholder', () => {
    for (const [key, r] of Object.entries(REPLIES)) {
      assert.ok(REASONS[r.status] !== undefined, `${key}: status ${r.status}`);
      assert.ok(r.text.endsWith('\n') && r.text.indexOf('\n') === r.text.length - 1, `${key}: one line`);
      assert.ok((r.text.match(/\{/g) ?? []).length <= 1, `${key}: one placeholder at most`);
    }
    assert.equal(replyText('lockedOut', 12), 'too many wrong source logins from this address; try again in 12 s\n');
    assert.equal(replyText('redirect', 'http://b/x'), 'http://b/x\n');
    assert.deepEqual(say('noSuchMount').status, 404);
    assert.match(BUSY_ANSWER.toString(), /^HTTP\/1\.0 503 Service Unavailable\r\n[\s\S]*\r\n\r\nthis node is busy; try again in a moment\n$/);
  });

  it('is used for every entry, and nothing in the front-end writes an answer of its own', () => {
    for (const key of Object.keys(REPLIES)) {
      assert.ok(proxy.some(([, s]) => s.includes(`'${key}'`) || s.includes(`.${key}.`) || s.includes(`.${key})`)), `${key} is never used`);
    }
    const inline = [/\btext\(\s*\d{3}/, /status:\s*[3-5]\d\d\s*,\s*(text|reason):/, /\.fail\(\s*\d{3}/, /writeStatus\('[3-5]\d\d/, /HTTP\/1\.[01] [3-5]\d\d/];
    for (const [f, s] of proxy) for (const re of inline) assert.doesNotMatch(s, re, `${f} writes an answer of its own`);
  });

  it('is listed in docs/errors.md, each with its status', () => {
    const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
    for (const [key, r] of Object.entries(REPLIES)) assert.match(doc, new RegExp(`^\\| \`${key}\` \\| ${r.status} \\|`, 'm'), key);
  });
});
