/**
 * Prints the commented /etc/default/radioai the Debian package installs,
 * from the settings table itself, so the file names every setting radiod
 * reads with its real default.
 */
import { SETTINGS } from '../src/config/settings.ts';

const head = `# radioai node settings: KEY=VALUE lines, read by radiod and radioctl.
# A flag or an environment variable of the same name overrides a line here.
#
# radiod.path starts radiod as soon as this file is saved with a DOMAIN;
# until then radiod.service waits ("systemctl status radiod" says why).
# After a later change: systemctl restart radiod
#
# The cluster's DNS zone, delegated to the NAMESERVERS (see
# /usr/share/doc/radioai/docs/cluster.md, "Procedure"). Required.
#DOMAIN=radio.example.com
`;

const lines: string[] = [head];
for (const s of SETTINGS) {
  if (s.key === 'domain') continue;
  const dflt = s.defaultText ?? (typeof s.default === 'string' ? (s.default === '' ? 'empty' : s.default) : '');
  lines.push(`# ${s.help[0]!.toUpperCase()}${s.help.slice(1)}.${dflt ? ` Default: ${dflt}.` : ''}`);
  lines.push(`#${s.env}=${typeof s.default === 'string' ? s.default : ''}`);
  lines.push('');
}
process.stdout.write(lines.join('\n'));
