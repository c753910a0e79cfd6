/**
 * This node's membership in the cluster, on etcd: its presence (the node
 * record and, once a second, its status, on one lease of LEASE_TTL), its
 * candidacy in the master election, and the peer watch that finds a dead
 * node before its lease runs out.
 *
 * The node campaigns only once it holds its name: a second radiod started
 * with the same name never becomes master. presence.start() throws
 * RADIOAI_ERR_NAME_TAKEN when another live node has the name, which ends
 * radiod (main.ts).
 */
import type { Etcd3 } from 'etcd3';
import { nodeIcecast } from '../core/host-port.ts';
import type { ClusterModel, NodeInfo } from '../state/cluster-model.ts';
import { Campaigner } from '../state/election.ts';
import { MASTER_ELECTION } from '../state/keys.ts';
import { PeerWatch, type PeerAddress } from '../state/peer-watch.ts';
import { Presence } from '../state/presence.ts';

export interface MembershipOptions {
  client: Etcd3;
  model: ClusterModel;
  info: NodeInfo;
  leaseTtl: number;
  /** etcd answers and this node is in service: only then does it vote on others. */
  connected: () => boolean;
}

/** The other nodes as the peer watch probes them: HTTP port and own Icecast. */
export function peersOf(nodes: Iterable<NodeInfo>, self: string): PeerAddress[] {
  const out: PeerAddress[] = [];
  for (const n of nodes) {
    const icecast = n.name === self ? null : nodeIcecast(n);
    if (icecast) out.push({ name: n.name, host: icecast.host, httpPort: n.httpPort, icecastPort: icecast.port });
  }
  return out;
}

export class Membership {
  readonly presence: Presence;
  readonly election: Campaigner;
  readonly peerWatch: PeerWatch;

  constructor(o: MembershipOptions) {
    const self = o.info.name;
    this.presence = new Presence(o.client, o.info, o.leaseTtl);
    this.election = new Campaigner(o.client, MASTER_ELECTION, self, o.leaseTtl);
    const presence = this.presence;
    this.peerWatch = new PeerWatch({
      client: o.client,
      self,
      peers: () => peersOf(o.model.nodes.values(), self),
      voters: (suspect) => [...o.model.nodes.keys()].filter((n) => n !== suspect),
      leaseId: () => presence.leaseId,
      connected: o.connected,
    });
  }

  async start(): Promise<void> {
    const election = this.election;
    void this.presence.firstRegistration.then(() => election.start());
    await this.presence.start();
  }

  async stop(): Promise<void> {
    await Promise.all([this.peerWatch.close(), this.election.stop(), this.presence.stop()]);
  }
}
