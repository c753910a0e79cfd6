/**
 * The bounds that keep one worker's DNS server serving under hostile
 * clients: how long and how much a TCP connection may hold, and how much
 * a UDP socket may queue. Each is sized so that the worst case, times the
 * connections allowed, stays a few megabytes.
 */
export const DNS_LIMITS = {
  /** A TCP connection with no query under way is closed after this long (counted from its last answer, or from its start). */
  tcpIdleMs: 10_000,
  /**
   * A query over TCP must arrive whole within this long of its first byte, however slowly it trickles:
   * a timer restarted by every byte would let one byte every few seconds hold a connection slot forever.
   */
  tcpQueryMs: 3000,
  /** TCP connections per worker. */
  tcpConnections: 1000,
  /** Answers waiting for a TCP client that does not read them: past this, it is let go. */
  tcpQueueBytes: 64 * 1024,
  /** A query is one question and an OPT record: a longer frame is not a query. */
  tcpQueryBytes: 4096,
  /**
   * Stream buffer of a TCP connection, each way. Node's default (64 KiB) times a thousand connections
   * that send queries and do not read the answers is 64 MB; this much holds many answers.
   */
  tcpBufferBytes: 8192,
  /**
   * What paused TCP connections may hold in all, per worker (their unread queries, unsent answers and
   * a read in flight). A connection is paused when its client does not read the answers, or when it
   * has had its turn while more of its queries wait; past this budget it is let go instead.
   */
  tcpPausedBytes: 4 * 1024 * 1024,
  /**
   * Queries one TCP connection gets answered before the others and UDP have their turn: a read brings up
   * to 64 KiB (some 1500 queries), and a thousand connections' reads answered in one go kept UDP waiting
   * for seconds.
   */
  tcpTurn: 256,
  /**
   * Answers node:dgram holds for a UDP socket the kernel does not take them from: past this they are
   * dropped, as the kernel drops datagrams, instead of queueing in memory without bound.
   */
  udpSendQueueBytes: 1024 * 1024,
} as const;
