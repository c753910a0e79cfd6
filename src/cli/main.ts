/**
 * radioctl entry point: runs the command and exits with its code.
 */
import { readFileSync } from 'node:fs';
import { quietIpServerNameWarning } from '../core/warnings.ts';
import { radioctl } from './radioctl.ts';

quietIpServerNameWarning();

const code = await radioctl(process.argv.slice(2), {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
  readStdin: () => readFileSync(0, 'utf8'),
  env: process.env,
  tty: process.stdout.isTTY === true,
});
// gRPC keeps its channel open a moment after close(); the command is done, so end now.
process.exit(code);
