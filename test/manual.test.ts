/**
 * The manual pages and bash completion the package installs: groff reads
 * the pages without a warning and they name every setting and command;
 * bash, with the completion loaded, completes commands, options and mount
 * paths as a person at a shell would get them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { COMMANDS } from '../src/cli/radioctl.ts';
import { SETTINGS } from '../src/config/settings.ts';
import { completion, radioctlPage, radiodPage, roff } from '../packaging/manual.ts';
import { ROOT, createMount, startEtcd, tempDir, type Etcd } from '../harness/components.ts';

/** groff's plain-text rendering of a page, and its warnings. */
function render(page: string): { text: string; warnings: string } {
  // No hyphenation, one long line per paragraph: words are found whole.
  const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-rHY=0', '-rLL=300n', '-P', '-cbou'], { input: page, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { text: r.stdout.replace(/\s+/g, ' '), warnings: r.stderr };
}

describe('manual pages', () => {
  it('escapes what roff would read as its own', () => {
    assert.equal(roff('.starts with a dot\n--flag a\\b'), '\\&.starts with a dot\n\\-\\-flag a\\eb');
  });

  it('radiod(8) names every setting with its environment variable, and groff has no warning', () => {
    const { text, warnings } = render(radiodPage());
    assert.equal(warnings, '');
    for (const s of SETTINGS) {
      assert.ok(text.includes(s.flag), `${s.flag} in radiod(8)`);
      assert.ok(text.includes(`Environment: ${s.env}.`), `${s.env} in radiod(8)`);
    }
  });

  it('radioctl(8) tells every command, and groff has no warning', () => {
    const { text, warnings } = render(radioctlPage());
    assert.equal(warnings, '');
    for (const [name, c] of Object.entries(COMMANDS)) {
      assert.ok(text.includes(name), `${name} in radioctl(8)`);
      assert.ok(text.replace(/\s+/g, ' ').includes(c.summary.replace(/\s+/g, ' ').slice(0, 40)), `${name}'s summary in radioctl(8)`);
    }
  });
});

describe('bash completion for radioctl', () => {
  let etcd: Etcd;
  const script = join(tempDir('completion'), 'radioctl');
  writeFileSync(script, completion());
  before(async () => {
    etcd = await startEtcd();
    for (const path of ['/live.ogg', '/news.mp3']) await createMount(etcd.url, ['create-mount', path]);
  });
  after(async () => {
    await etcd?.stop();
  });
  /** What bash offers for the last word, with the completion loaded and the real radioctl on the PATH (it lists the mounts). */
  const complete = (...words: string[]): string[] => {
    const line = ['radioctl', ...words];
    const r = spawnSync('bash', ['-c', `
      source "${script}"
      COMP_WORDS=(${line.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${line.length - 1}
      _radioctl; printf '%s\\n' "\${COMPREPLY[@]}"`], {
      encoding: 'utf8', env: { ...process.env, PATH: `${join(ROOT, 'bin')}:${process.env.PATH ?? ''}`, ETCD_SERVER: etcd.url, RADIOAI_CONFIG: '/dev/null' },
    });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.split('\n').filter((l) => l !== '').sort();
  };

  it('completes commands, their options, option values and mount paths', () => {
    assert.deepEqual(complete('kick'), ['kick-source']);
    assert.deepEqual(complete('--json', 'li'), ['list-mounts', 'listeners']);
    assert.deepEqual(complete('listeners', '/l'), ['/live.ogg']);
    assert.deepEqual(complete('--etcd', 'http://x:2379', 'st'), ['status']);
    assert.deepEqual(complete('edit-mount', '/live.ogg', '--n'), ['--new-password', '--no-fallback', '--no-relay']);
    assert.deepEqual(complete('create-transcoding-mount', '/x.mp3', '--codec', ''), ['mp3', 'opus', 'vorbis']);
    assert.deepEqual(complete('kick-source', '/'), ['/live.ogg', '/news.mp3']);
    assert.deepEqual(complete('help', 'sh'), ['show-mount']);
    assert.deepEqual(complete('status', '/'), []);
  });
});
