/**
 * Reads `/etc/default/radioai`-style files: `KEY=VALUE` lines, `#` comments,
 * optional `export ` and optional single or double quotes, the subset of
 * shell syntax that systemd's EnvironmentFile= also understands.
 */
import { readFileSync } from 'node:fs';
import { RadioError } from '../core/errors.ts';

export const DEFAULT_CONFIG_FILE = '/etc/default/radioai';

export interface FileEntry {
  value: string;
  line: number;
}

export function parseConfigText(text: string, file: string): Map<string, FileEntry> {
  const out = new Map<string, FileEntry>();
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) {
      throw new RadioError('RADIOAI_ERR_CONFIG', `${file}:${i + 1}: expected KEY=VALUE, got "${line}"`);
    }
    let value = m[2]!;
    const q = value[0];
    if ((q === '"' || q === "'") && value.length >= 2 && value.endsWith(q)) value = value.slice(1, -1);
    else value = value.replace(/\s+#.*$/, '');
    out.set(m[1]!, { value, line: i + 1 });
  });
  return out;
}

/**
 * Reads the file; a missing default file is an empty configuration, a missing
 * file that was named explicitly is an error.
 */
export function readConfigFile(file: string, explicit: boolean): Map<string, FileEntry> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!explicit && code === 'ENOENT') return new Map();
    throw new RadioError('RADIOAI_ERR_CONFIG', `config file ${file}: ${code === 'ENOENT' ? 'does not exist' : String(code)}`);
  }
  return parseConfigText(text, file);
}
