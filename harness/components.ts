/**
 * The real components for tests, from the cluster harness: etcd, radiod,
 * radioctl, all on loopback and free ports and ended by PID in after().
 */
export { ROOT, run, tempDir, pidFrom, type Proc } from './process.ts';
export { startEtcd, type Etcd } from './etcd.ts';
export { startRadiod, radioctl, createMount, type Radiod, type RadiodOptions, type CtlResult, type Creds } from './radiod.ts';
export { httpGet } from './net.ts';
