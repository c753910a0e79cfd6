/**
 * Where radioai keeps its state in etcd. Everything lives under one
 * versioned prefix so that a future layout can live beside this one and a
 * migration can read the old while writing the new.
 *
 *   /radioai/v1/mounts/<path without leading slash>   mount record (JSON), no lease
 *   /radioai/v1/nodes/<name>                          node presence (JSON), on the node's lease
 *   /radioai/v1/status/<name>                         node status (JSON), on the node's lease
 *   /radioai/v1/election/master/<node name>            master election (election.ts), on the candidate's lease
 *   /radioai/v1/election/transcode/<mount>/<node name> who runs a transcoding mount's liquidsoap
 *   /radioai/v1/suspect/<node>/<prober>                a node found dead by another (peer-watch.ts), on the prober's lease
 *   /radioai/v1/query/listeners/<id>                   radioctl listeners' question, on radioctl's lease (listener-query.ts)
 *   /radioai/v1/answer/listeners/<id>/<node>           a node's answer, on a lease of 10 s
 */

export const PREFIX = '/radioai/v1/';
export const MOUNTS = `${PREFIX}mounts/`;
export const NODES = `${PREFIX}nodes/`;
export const STATUS = `${PREFIX}status/`;
/** Election names, under ELECTIONS. */
export const MASTER_ELECTION = 'master';
export const ELECTIONS = `${PREFIX}election/`;
export const MASTER_ELECTION_PREFIX = `${ELECTIONS}${MASTER_ELECTION}/`;

/** The election of a transcoding mount (the path, one URL-encoded segment). */
export const transcodeElection = (path: string): string => `transcode/${encodeURIComponent(path.slice(1))}`;

export const mountKey = (path: string): string => `${MOUNTS}${path.slice(1)}`;
export const nodeKey = (name: string): string => `${NODES}${name}`;
export const statusKey = (name: string): string => `${STATUS}${name}`;
