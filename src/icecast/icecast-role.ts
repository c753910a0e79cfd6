/**
 * The role of a node's Icecast, from the master election: the master takes
 * the sources; the standby, the candidate next in line, relays nothing so
 * that its mounts are free for sources the moment it is elected (its hubs
 * pull from the master's Icecast meanwhile); every other node relays the
 * master's mounts.
 */
export type IcecastRole = 'master' | 'standby' | 'relay';

/**
 * `candidates` is the master election's, oldest (the master) first;
 * `master` is the master this node acts on (it may differ from the first
 * candidate while this node is out of service).
 */
export function icecastRole(self: string, master: string, candidates: readonly string[]): IcecastRole {
  if (master === self) return 'master';
  return candidates.find((n) => n !== master) === self ? 'standby' : 'relay';
}
