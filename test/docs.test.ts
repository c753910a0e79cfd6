/**
 * The documentation cannot drift from the code or break its own links: the
 * settings table in docs/configuration.md is the one packaging/configuration-doc.ts
 * makes from SETTINGS, every setting is named there, every relative link in
 * README.md and docs/ leads to a file (and to a heading, when it names one),
 * and the README stays a short first read.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { SETTINGS } from '../src/config/settings.ts';
import { CONFIGURATION_DOC, TABLE_END, TABLE_START, settingsTable, tableIn } from '../packaging/configuration-doc.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const README = join(ROOT, 'README.md');
const DOCS = join(ROOT, 'docs');
const pages = [README, ...readdirSync(DOCS).filter((f) => f.endsWith('.md')).sort().map((f) => join(DOCS, f))];

/** The text without fenced code blocks and inline code, where `](` is not a link. */
function prose(text: string): string {
  return text.replace(/^ *```[\s\S]*?^ *```/gm, '').replace(/`[^`\n]*`/g, '');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

const anchorsOf = new Map<string, Set<string>>();

/** The anchors a Markdown file's headings make, a repeated one numbered as GitHub does. */
function anchors(file: string): Set<string> {
  const known = anchorsOf.get(file);
  if (known) return known;
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of prose(readFileSync(file, 'utf8')).matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  anchorsOf.set(file, out);
  return out;
}

describe('documentation', () => {
  const doc = readFileSync(CONFIGURATION_DOC, 'utf8');

  it('docs/configuration.md holds the settings table the code makes', () => {
    const found = tableIn(doc);
    assert.notEqual(found, null, `docs/configuration.md lacks the markers ${TABLE_START} and ${TABLE_END}`);
    const want = settingsTable();
    if (found !== want) {
      const have = found!.split('\n');
      const line = want.split('\n').findIndex((l, i) => l !== have[i]);
      assert.fail(`docs/configuration.md's settings table differs from src/config/settings.ts (first at table line ${line + 1}: ${JSON.stringify(have[line] ?? '(none)')}); run \`npm run docs\``);
    }
  });

  it('docs/configuration.md names every setting', () => {
    for (const s of SETTINGS) {
      assert.ok(doc.includes(s.env), `${s.env} in docs/configuration.md`);
      assert.ok(doc.includes(s.flag), `${s.flag} in docs/configuration.md`);
    }
  });

  it('every relative link in README.md and docs/ leads to a file, and to a heading when it names one', () => {
    const broken: string[] = [];
    for (const page of pages) {
      for (const m of prose(readFileSync(page, 'utf8')).matchAll(/\]\(([^)\s]+)\)/g)) {
        const link = m[1]!;
        if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue;
        const [path, anchor] = link.split('#', 2) as [string, string | undefined];
        const target = path === '' ? page : resolve(dirname(page), path);
        const where = `${relative(ROOT, page)}: ${link}`;
        if (!existsSync(target)) broken.push(`${where} (no such file)`);
        else if (anchor !== undefined && target.endsWith('.md') && statSync(target).isFile() && !anchors(target).has(anchor)) broken.push(`${where} (no such heading)`);
      }
    }
    assert.deepEqual(broken, []);
  });

  it('README.md is a short first read, at most 200 lines', () => {
    const lines = readFileSync(README, 'utf8').replace(/\n$/, '').split('\n').length;
    assert.ok(lines <= 200, `README.md has ${lines} lines; move detail to docs/`);
  });
});
