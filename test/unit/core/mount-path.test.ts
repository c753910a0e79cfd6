/** The mount-path rule (docs/radioctl.md), table-driven. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mountPathProblem } from '../../../src/core/mount-path.ts';

describe('mount paths', () => {
  const good = ['/live.ogg', '/a', '/a/b/c.mp3', '/A-Z_a~z.09', '/' + 'x'.repeat(199), '/dir/.hidden', '/..x', '/x.m3u8'];
  for (const p of good) it(`accepts ${p.slice(0, 40)}`, () => assert.equal(mountPathProblem(p), null));
  const bad: [string, RegExp][] = [
    ['live.ogg', /start with/],
    ['', /start with/],
    ['/', /empty segment/],
    ['/a//b', /empty segment/],
    ['/a/', /empty segment/],
    ['/./a', /"\." or "\.\." segment/],
    ['/a/..', /"\." or "\.\." segment/],
    ['/' + 'x'.repeat(200), /longer than 200/],
    ['/a b', /may only contain/],
    ['/a%20b', /may only contain/],
    ['/a?x=1', /may only contain/],
    ['/<script>', /may only contain/],
    ['/ünïcode', /may only contain/],
    ['/a\nb', /may only contain/],
    ['/live.m3u', /\.m3u, \.pls or \.xspf/],
    ['/live.PLS', /\.m3u, \.pls or \.xspf/],
    ['/live.xspf', /\.m3u, \.pls or \.xspf/],
  ];
  for (const [p, why] of bad) it(`refuses ${JSON.stringify(p.slice(0, 40))}`, () => assert.match(mountPathProblem(p) ?? '', why));
});
