/**
 * radiod's own log lines from real radiods whose
 * stderr is a file standing in for the journal (JOURNAL_STREAM names it, as
 * systemd does) or that log JSON; and SIGHUP sent the way the unit's
 * ExecReload= sends it, which must leave radiod serving.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../harness/net.ts';
import { ROOT } from '../harness/process.ts';
import { startEtcd, startRadiod, tempDir, type Etcd, type Radiod } from '../harness/components.ts';

describe('a node logging to the journal, or in JSON', () => {
  let etcd: Etcd;
  const nodes: Radiod[] = [];
  let taken: Server;
  let takenPort = 0;

  before(async () => {
    etcd = await startEtcd();
    // METRICS_ADDR on a port something else holds: radiod logs an error and serves on.
    taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.29.1', r));
    takenPort = (taken.address() as { port: number }).port;
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    taken?.close();
    await etcd?.stop();
  });

  it('gives each line its priority when stderr is the journal, and takes the unit\'s reload without stopping', async () => {
    const file = join(tempDir('journal'), 'radiod.log');
    writeFileSync(file, '');
    const st = statSync(file);
    const node = await startRadiod({
      name: 'lj', host: '127.0.29.1', etcd: etcd.url, logFile: file, metricsAddr: `127.0.29.1:${takenPort}`,
      env: { JOURNAL_STREAM: `${st.dev}:${st.ino}` },
    });
    nodes.push(node);
    const unit = readFileSync(join(ROOT, 'packaging/systemd/radiod.service'), 'utf8');
    const reload = /^ExecReload=(.*)$/m.exec(unit)?.[1];
    assert.ok(reload, 'the unit has ExecReload=');
    const [cmd, ...args] = reload.replace('$MAINPID', String(node.proc.pid)).split(/\s+/);
    execFileSync(cmd!, args);
    await waitFor(() => /SIGHUP/.test(readFileSync(file, 'utf8')), 5000, 'SIGHUP logged');
    assert.equal((await node.health()).status, 200, 'radiod serves after SIGHUP');
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
    const own = lines.filter((l) => /^<\d>(DEBUG|INFO|WARN|ERROR) /.test(l));
    assert.ok(own.length >= 3, `radiod's own lines:\n${lines.join('\n')}`);
    for (const l of own) {
      const [, p, level] = /^<(\d)>(\w+)/.exec(l)!;
      assert.equal(p, { DEBUG: '7', INFO: '6', WARN: '4', ERROR: '3' }[level!], l);
    }
    assert.ok(own.some((l) => l.startsWith('<3>ERROR radiod: cannot serve Prometheus metrics')), 'the taken METRICS_ADDR is an error');
    assert.ok(own.some((l) => l.startsWith('<6>INFO radiod: ready')), 'ready is information');
  });

  it('writes one JSON object a line with LOG_FORMAT=json, children\'s lines included', async () => {
    const file = join(tempDir('json-log'), 'radiod.log');
    const node = await startRadiod({ name: 'lf', host: '127.0.29.2', etcd: etcd.url, logFile: file, env: { LOG_FORMAT: 'json' } });
    nodes.push(node);
    await waitFor(async () => (await node.health()).body.icecast === 'ready', 15_000, 'Icecast ready');
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
    assert.ok(lines.length >= 3, 'some lines');
    const objects = lines.map((l) => JSON.parse(l) as { level: string; component: string; msg: string; time: string; priority: number });
    for (const o of objects) {
      assert.ok(['debug', 'info', 'warn', 'error'].includes(o.level), JSON.stringify(o));
      assert.ok(!Number.isNaN(Date.parse(o.time)));
    }
    assert.ok(objects.some((o) => o.component === 'radiod' && o.msg === 'ready'));
  });
});
