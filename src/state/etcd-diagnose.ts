/**
 * Why etcd cannot be reached, in words an operator can act on. The gRPC
 * client reports a missing client certificate, a certificate from another
 * CA, a TLS server spoken to in plain text and a port nobody listens on all
 * as "unavailable"; one handshake of our own against the first endpoint,
 * with the same files, tells them apart.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { existsSync } from 'node:fs';
import type { EtcdSettings, Tls } from './etcd-client.ts';
import { parseEndpoint } from './etcd-probe.ts';

/** What a TLS or TCP attempt ended with: an error code, or the first bytes of an HTTP answer. */
interface Outcome {
  error?: NodeJS.ErrnoException;
  answer?: string;
}

function attempt(open: () => Socket, request: string, event: 'connect' | 'secureConnect', timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const s = open();
    let answer = '';
    const done = (o: Outcome): void => {
      s.destroy();
      resolve(o);
    };
    s.setTimeout(timeoutMs, () => done({ error: Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }) }));
    s.once(event, () => s.write(request));
    s.on('data', (d: Buffer) => {
      answer += d.toString('latin1');
      if (answer.includes('\r\n')) done({ answer });
    });
    s.once('error', (error: NodeJS.ErrnoException) => done({ error }));
    s.once('end', () => done(answer ? { answer } : { error: Object.assign(new Error('closed by the server'), { code: 'ECONNRESET' }) }));
  });
}

const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_SIGNATURE_FAILURE',
]);

/**
 * A sentence saying why `url` refuses this client, or null when a handshake
 * works (the trouble is elsewhere: quorum, a slow member).
 */
export async function diagnoseEtcd(url: string, s: EtcdSettings, tls: Tls | null, timeoutMs = 2000): Promise<string | null> {
  const e = parseEndpoint(url);
  const where = `${e.host}:${e.port}`;
  const request = `GET /health HTTP/1.1\r\nHost: ${where}\r\nConnection: close\r\n\r\n`;
  const plain = await attempt(() => tcpConnect({ host: e.host, port: e.port }), request, 'connect', timeoutMs);
  const code = plain.error?.code ?? '';
  if (code === 'ECONNREFUSED') return `nothing listens at ${where} (connection refused)`;
  if (code === 'ETIMEDOUT') return `no answer from ${where} within ${timeoutMs / 1000} s`;
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return `${where} is unreachable from here`;

  if (!url.startsWith('https:')) {
    if (plain.answer?.startsWith('HTTP/')) return null;
    // A TLS server answers plain text with garbage or closes the connection.
    const probe = await attempt(() => tlsConnect({ host: e.host, port: e.port, rejectUnauthorized: false }), request, 'secureConnect', timeoutMs);
    if (probe.answer !== undefined || probe.error?.code?.includes('CERTIFICATE_REQUIRED') || probe.error?.code?.includes('ALERT')) {
      return `etcd at ${where} speaks TLS: put its CA certificate at ETCD_CA (${s.etcdCa}${existsSync(s.etcdCa) ? '' : ', not found'}) and a client certificate at ETCD_CERT/ETCD_KEY`;
    }
    return null;
  }

  const withCert = tls?.certChain !== undefined;
  const secure = await attempt(() => tlsConnect({
    host: e.host, port: e.port,
    ...(tls ? { ca: tls.rootCertificate } : {}),
    ...(tls?.certChain ? { cert: tls.certChain, key: tls.privateKey } : {}),
  }), request, 'secureConnect', timeoutMs);
  if (secure.answer?.startsWith('HTTP/')) return null;
  const err = secure.error;
  const c = err?.code ?? '';
  if (UNTRUSTED.has(c)) return `etcd's server certificate at ${where} is not signed by the CA in ETCD_CA (${s.etcdCa}): ${err!.message}`;
  if (c === 'ERR_TLS_CERT_ALTNAME_INVALID') return `etcd's server certificate does not name ${e.host} (${err!.message})`;
  if (c === 'CERT_HAS_EXPIRED' || c === 'CERT_NOT_YET_VALID') return `etcd's server certificate at ${where}: ${err!.message}`;
  if (c.includes('WRONG_VERSION_NUMBER') || c.includes('PACKET_LENGTH_TOO_LONG')) return `etcd at ${where} does not speak TLS: use an http:// URL, or remove ETCD_CA (${s.etcdCa})`;
  if (c.includes('CERTIFICATE_REQUIRED') || (!withCert && c.includes('ALERT'))) {
    return withCert
      ? `etcd at ${where} refused the client certificate ETCD_CERT (${s.etcdCert}): ${err!.message}`
      : `etcd at ${where} requires a client certificate: none at ETCD_CERT (${s.etcdCert}) and ETCD_KEY (${s.etcdKey})`;
  }
  if (c.includes('ALERT')) return `etcd at ${where} refused the client certificate ETCD_CERT (${s.etcdCert}): ${err!.message}`;
  return err ? `TLS to ${where} failed: ${err.message}` : null;
}
