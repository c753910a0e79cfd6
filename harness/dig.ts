/**
 * dig as the DNS client of the tests, with its answer split into sections.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface Dig {
  status: string;
  flags: string[];
  answer: string[];
  authority: string[];
  additional: string[];
  raw: string;
}

export async function dig(n: { host: string; dnsPort: number }, ...args: string[]): Promise<Dig> {
  const { stdout } = await exec('dig', [`@${n.host}`, '-p', String(n.dnsPort), '-b', '127.0.0.1', '+norec', '+time=2', '+tries=1', ...args]);
  const section = (name: string): string[] => {
    const m = new RegExp(`;; ${name} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(stdout);
    return m ? m[1]!.split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.replace(/\s+/g, ' ').trim()) : [];
  };
  return {
    status: /status: (\w+)/.exec(stdout)?.[1] ?? '',
    flags: (/;; flags: ([^;]*);/.exec(stdout)?.[1] ?? '').trim().split(' '),
    answer: section('ANSWER'),
    authority: section('AUTHORITY'),
    additional: section('ADDITIONAL'),
    raw: stdout,
  };
}

/** The addresses `stream.DOMAIN` resolves to at node `n`, sorted. */
export async function streamAddresses(n: { host: string; dnsPort: number }, domain = 'radio.test'): Promise<string[]> {
  return (await dig(n, `stream.${domain}`, 'A', '+short')).raw.trim().split('\n').filter(Boolean).sort();
}
