/**
 * radiod entry point: reads the configuration, starts the daemon, and stops
 * it on SIGTERM or SIGINT. This is the one place that sets the exit code.
 */
import { configFileName, loadConfig, usage } from './config/load-config.ts';
import { VERSION } from './core/version.ts';
import { quietIpServerNameWarning } from './core/warnings.ts';
import { existsSync } from 'node:fs';
import { ERRORS, RadioError, codeOf, describe, hasCode } from './core/errors.ts';
import { plaintextRefusal } from './state/etcd-client.ts';
import { logger, setLogFormat } from './core/log.ts';
import { Daemon } from './node/daemon.ts';

const log = logger('radiod');
quietIpServerNameWarning();

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  if (argv.includes('--version')) {
    process.stdout.write(`radiod ${VERSION}\n`);
    return 0;
  }
  if (argv.includes('--check-config')) return checkConfig(argv.filter((a) => a !== '--check-config'));
  let config;
  try {
    config = await loadConfig(argv);
  } catch (err) {
    process.stderr.write(`radiod: ${describe(err)}\n`);
    const code = codeOf(err);
    return code === null ? 1 : ERRORS[code].radiod;
  }
  setLogFormat(config.logFormat);
  const daemon = new Daemon(config);
  let stopping: Promise<number> | null = null;
  const stop = (sig: string): Promise<number> => {
    if (!stopping) {
      log.info(`${sig} received`);
      // A stop that hangs must not outlive the 10 s systemd and operators expect.
      const force = setTimeout(() => {
        log.error('stop took longer than 9 s; exiting anyway');
        process.exit(1);
      }, 9000);
      force.unref();
      stopping = daemon.stop().then(() => 0, (err: unknown) => {
        log.error(`stop failed: ${describe(err)}`);
        return 1;
      });
    }
    return stopping;
  };
  const stopped = new Promise<number>((resolve) => {
    process.on('SIGTERM', () => void stop('SIGTERM').then(resolve));
    process.on('SIGINT', () => void stop('SIGINT').then(resolve));
  });
  const faults = process.env.RADIOAI_FAULTS === '1';
  if (faults) {
    // Fault injection for the test suite: crash worker 0 on SIGUSR2.
    process.on('SIGUSR2', () => daemon.workers.post(0, { type: 'CRASH', kind: 'timer' }));
  }
  // Node's default for these is to end the process: an operator's habitual `kill -HUP`, or a
  // stray signal, would drop every listener. Only SIGTERM and SIGINT stop radiod.
  // SIGHUP, as for other daemons: logs opened again (logrotate), never a stop.
  process.on('SIGHUP', () => daemon.reload());
  for (const sig of ['SIGUSR1', ...(faults ? [] : ['SIGUSR2']), 'SIGPIPE'] as const) {
    process.on(sig, () => log.info(`${sig} ignored: radiod stops on SIGTERM or SIGINT`));
  }
  try {
    await daemon.start();
  } catch (err) {
    log.error(describe(err));
    await stop('startup failure');
    return 1;
  }
  log.info('ready');
  return stopped;
}

/**
 * `radiod --check-config`: the systemd unit's ExecCondition. 0 when radiod
 * can start; otherwise one line saying what to put in the file and exit 1,
 * which systemd takes as "not yet" rather than a failure, so the service
 * waits for radiod.path to see the file saved instead of restarting in a loop.
 */
async function checkConfig(argv: string[]): Promise<number> {
  try {
    const c = await loadConfig(argv);
    // radiod would stop at once on it; said here, the unit waits instead of restarting in a loop.
    const refused = plaintextRefusal(c.etcdServer, existsSync(c.etcdCa), c.etcdAllowPlaintext, c.etcdCa);
    if (refused !== null) throw new RadioError('RADIOAI_ERR_ETCD_PLAINTEXT', refused);
    process.stdout.write(`radiod: configuration complete: node ${c.nodeName} of ${c.domain}\n`);
    return 0;
  } catch (err) {
    const file = configFileName(argv);
    const missingDomain = hasCode(err, 'RADIOAI_ERR_NO_DOMAIN');
    process.stdout.write(missingDomain
      ? `radiod: waiting for DOMAIN in ${file}; radiod starts when the file is saved with DOMAIN=your.zone\n`
      : `radiod: not starting until ${file} is fixed: ${describe(err)}\n`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
// Worker threads and child processes are already gone; leftover client
// handles (gRPC channels) must not keep the process alive.
process.exit(code);
