/**
 * What a worker thread is started with, from radiod's configuration: the
 * settings slice the thread contract names (ipc/messages.ts), the shared
 * buffers, fault injection, and no certificate until the TLS files are read.
 */
import type { Config } from '../config/settings.ts';
import { workerSettings as slice, type WorkerInit } from '../ipc/messages.ts';

export function workerInit(config: Config, buffers: { snapshot: SharedArrayBuffer; stats: SharedArrayBuffer }): Omit<WorkerInit, 'id'> {
  return { ...buffers, settings: slice(config), faults: process.env.RADIOAI_FAULTS === '1', tls: null };
}
