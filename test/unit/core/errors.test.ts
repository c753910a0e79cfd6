/**
 * The error catalogue against the code and the operators' table: every
 * code is raised somewhere in src/, has exactly one row in docs/errors.md
 * with its radioctl and radiod exit codes, no document names a code that
 * does not exist, and no code branches on an error's message text.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../../../harness/process.ts';
import { ERRORS } from '../../../src/core/errors.ts';

const sources = (readdirSync(join(ROOT, 'src'), { recursive: true }) as string[])
  .filter((f) => f.endsWith('.ts') && f !== join('core', 'errors.ts'))
  .map((f) => [f, readFileSync(join(ROOT, 'src', f), 'utf8')] as const);
const table = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
const rows = [...table.matchAll(/^\| `(RADIOAI_ERR_[A-Z_]+)` \|[^|\n]*\|\s*(\d)\s*\|\s*(\d)\s*\|/gm)];

describe('the error catalogue', () => {
  it('raises every code somewhere in src/', () => {
    for (const code of Object.keys(ERRORS)) {
      // Raised directly, or by the settings loader for a required setting that is missing (settings.ts `required`).
      const raised = sources.some(([, s]) => new RegExp(`(new RadioError\\(\\s*|required: \\{ code: )'${code}'`).test(s));
      assert.ok(raised, `${code} is never raised: raise it where it applies, or remove it from the catalogue and docs/errors.md`);
    }
  });

  it('has one row per code in docs/errors.md, with its exit codes', () => {
    const seen = new Map(rows.map((m) => [m[1]!, { exit: Number(m[2]), radiod: Number(m[3]) }]));
    assert.equal(rows.length, seen.size, 'a code listed twice');
    assert.deepEqual([...seen.keys()].sort(), Object.keys(ERRORS).sort());
    for (const [code, spec] of Object.entries(ERRORS)) {
      assert.deepEqual(seen.get(code), { exit: spec.exit, radiod: spec.radiod }, `${code}'s exit codes in docs/errors.md`);
    }
  });

  it('is the only source of code names in the documents', () => {
    const docs = ['README.md', 'ARCHITECTURE.md', ...readdirSync(join(ROOT, 'docs')).map((f) => `docs/${f}`)];
    for (const d of docs) {
      for (const m of readFileSync(join(ROOT, d), 'utf8').matchAll(/RADIOAI_ERR_[A-Z_]+/g)) {
        assert.ok(Object.hasOwn(ERRORS, m[0]), `${d} names ${m[0]}, which is not a code`);
      }
    }
  });

  it('is what code branches on, never an error\'s message text', () => {
    // radioctl reads etcd's and gRPC's errors, which carry no code of ours: it alone may look at their text.
    const byText = /\.message\s*(===|!==)|\.message\.(includes|startsWith|endsWith|match)\(|describe\([^)]*\)\.(includes|startsWith|endsWith|match)\(/;
    const offenders = sources.filter(([f, s]) => f !== join('cli', 'radioctl.ts') && byText.test(s)).map(([f]) => f);
    assert.deepEqual(offenders, []);
  });
});
