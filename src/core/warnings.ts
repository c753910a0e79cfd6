/**
 * Node's warning output without DEP0123. etcd members are reached by IP
 * address and their certificates name those addresses; gRPC passes the
 * address as the TLS server name, which Node deprecates on every connection,
 * so each radioctl run against a secured etcd would print it. Every other
 * warning is still printed by Node's own handler.
 */
export function quietIpServerNameWarning(): void {
  const printers = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', (w: Error & { code?: string }) => {
    if (w.code === 'DEP0123') return;
    for (const print of printers) print(w);
  });
}
