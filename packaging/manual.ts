/**
 * Prints what the Debian package installs for people at a shell, made from
 * the tables the programs themselves use, so that neither can drift from
 * them: `radiod.8` from the settings table, `radioctl.8` from radioctl's
 * command table, and `completion` (bash completion for radioctl).
 *
 *   node packaging/manual.ts radiod|radioctl|completion
 */
import { pathToFileURL } from 'node:url';
import { COMMANDS, GLOBAL_OPTIONS } from '../src/cli/radioctl.ts';
import { SETTINGS } from '../src/config/settings.ts';
import { VERSION } from '../src/core/version.ts';

/** Text for roff: backslashes and hyphens escaped, no line starting with a control character. */
export function roff(text: string): string {
  return text.replace(/\\/g, '\\e').replace(/-/g, '\\-')
    // groff reads its input as Latin-1: anything beyond ASCII goes in as a named Unicode character.
    .replace(/[^ -~\n\t]/gu, (c) => `\\[u${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}]`)
    .split('\n').map((l) => (/^[.']/.test(l) ? `\\&${l}` : l)).join('\n');
}

const head = (name: string, what: string): string[] => [
  `.TH ${name.toUpperCase()} 8 "" "radioai ${VERSION}" "radioai"`,
  '.SH NAME',
  `${name} \\- ${roff(what)}`,
];

export function radiodPage(): string {
  const out = [
    ...head('radiod', 'one node of a radioai streaming cluster'),
    '.SH SYNOPSIS', '.B radiod', '[\\fIOPTIONS\\fR]',
    '.SH DESCRIPTION',
    roff('radiod serves a DNS domain together with the other nodes of its cluster: it registers the node in etcd, takes part in the election of the master (which takes the sources), runs and supervises the node\'s own Icecast and liquidsoap transcoders, and serves listeners, sources, playlists and the status page on HTTP_PORT and ICECAST_PORT, and the cluster\'s zone over DNS on DNS_PORT.'),
    '.PP',
    roff('Every setting is a flag, an environment variable of the same meaning, or a KEY=VALUE line in /etc/default/radioai (or the file named by --config or RADIOAI_CONFIG); a flag wins over the environment, which wins over the file.'),
    '.SH OPTIONS',
  ];
  for (const s of SETTINGS) {
    const dflt = s.defaultText ?? (typeof s.default === 'string' ? (s.default === '' ? 'empty' : s.default) : '');
    out.push('.TP', `\\fB${roff(s.flag)}\\fR${s.isBoolean ? '' : ` \\fI${s.env}\\fR`}`);
    out.push(`${roff(`${s.help[0]!.toUpperCase()}${s.help.slice(1)}.`)} Environment: \\fB${roff(s.env)}\\fR.${dflt ? ` Default: ${roff(dflt)}.` : ''}`);
  }
  out.push(
    '.SH SIGNALS',
    roff('SIGTERM or SIGINT stops the node: the workers close their listen sockets, listeners are let go, the node leaves etcd at once. SIGHUP opens the listener log (ACCESS_LOG) again, as logrotate expects, and stops nothing. SIGUSR1, SIGUSR2 and SIGPIPE are logged and ignored.'),
    '.SH EXIT STATUS',
    roff('0 after a clean stop; 2 for an invalid or missing setting (one line naming it); 1 for any other failure to start, such as a node name held by another live node.'),
    '.SH FILES',
    '.TP', '.I /etc/default/radioai', roff('the settings; radiod.path starts radiod once it names a DOMAIN.'),
    '.TP', '.I /var/lib/radioai', roff('DATA_DIR: the embedded etcd member, the Icecast configuration, liquidsoap scripts.'),
    '.TP', '.I /var/lib/radioai/access.log', roff('the listener log (ACCESS_LOG), rotated weekly by /etc/logrotate.d/radioai.'),
    '.SH SEE ALSO',
    '.BR radioctl (8),',
    '.BR icecast2 (1),',
    '.BR etcd (1)',
    '.PP',
    roff('/usr/share/doc/radioai/docs/cluster.md for installing a cluster, docs/configuration.md for every setting, and docs/failure-behaviour.md for what happens when parts fail.'),
  );
  return `${out.join('\n')}\n`;
}

export function radioctlPage(): string {
  const out = [
    ...head('radioctl', 'manage the mounts of a radioai cluster and show its state'),
    '.SH SYNOPSIS', '.B radioctl', '[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]',
    '.SH DESCRIPTION',
    roff('radioctl talks to the cluster\'s etcd directly: a mount created, edited or deleted there reaches every node within a second. Tables come tab-separated, or aligned when stdout is a terminal.'),
    '.SH COMMANDS',
  ];
  for (const c of Object.values(COMMANDS)) out.push('.TP', `\\fB${roff(c.usage.replace(/\n/g, ' '))}\\fR`, roff(c.summary));
  out.push('.SH OPTIONS');
  for (const o of GLOBAL_OPTIONS) out.push('.TP', `\\fB${roff(o.flag)}\\fR${o.arg ? ` \\fI${o.arg}\\fR` : ''}`, roff(`${o.help[0]!.toUpperCase()}${o.help.slice(1)}.`));
  out.push(
    '.SH EXIT STATUS',
    roff('0 done; 1 bad usage or invalid input (one line on stderr); 2 no such mount; 3 etcd not reachable within the timeout.'),
    '.SH EXAMPLES',
    '.nf',
    roff('radioctl create-mount /live.ogg\nradioctl create-mount /main.mp3 --fallback /live.ogg\nradioctl --json status\nradioctl kick-source /live.ogg'),
    '.fi',
    '.SH SEE ALSO',
    '.BR radiod (8)',
  );
  return `${out.join('\n')}\n`;
}

/** bash completion for radioctl: commands, then each command's options, mount paths from list-mounts. */
export function completion(): string {
  const perCommand = Object.entries(COMMANDS).map(([name, c]) => `    ${name}) opts="${c.options.join(' ')}" ;;`).join('\n');
  const takesPath = Object.entries(COMMANDS).filter(([, c]) => c.args === 'PATH').map(([n]) => n).join('|');
  return `# bash completion for radioctl (radioai ${VERSION})
_radioctl() {
  local cur prev cmd word opts
  cur=\${COMP_WORDS[COMP_CWORD]}
  prev=\${COMP_WORDS[COMP_CWORD-1]}
  cmd=
  local i=1 skip=
  while [ "$i" -lt "$COMP_CWORD" ]; do
    word=\${COMP_WORDS[i]}
    if [ -n "$skip" ]; then skip=
    else
      case $word in
        --etcd|--timeout|--config|--etcd-ca|--etcd-cert|--etcd-key) skip=1 ;;
        -*) ;;
        *) cmd=$word; break ;;
      esac
    fi
    i=$((i + 1))
  done
  case $prev in
    --etcd|--timeout|--relay|--bitrate|--samplerate|--quality) return 0 ;;
    --config|--etcd-ca|--etcd-cert|--etcd-key) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
    --codec) COMPREPLY=($(compgen -W "mp3 vorbis opus" -- "$cur")); return 0 ;;
    --channels) COMPREPLY=($(compgen -W "1 2" -- "$cur")); return 0 ;;
  esac
  if [ -z "$cmd" ]; then
    COMPREPLY=($(compgen -W "${Object.keys(COMMANDS).join(' ')} ${GLOBAL_OPTIONS.map((o) => o.flag).join(' ')}" -- "$cur"))
    return 0
  fi
  opts=
  case $cmd in
${perCommand}
  esac
  if [ "$cmd" = help ]; then
    COMPREPLY=($(compgen -W "${Object.keys(COMMANDS).join(' ')}" -- "$cur"))
    return 0
  fi
  case $cur in
    -*) COMPREPLY=($(compgen -W "$opts --json --timeout --etcd" -- "$cur")) ;;
    /*|'')
      case $cmd in
        ${takesPath}) COMPREPLY=($(compgen -W "$(radioctl --timeout 2 list-mounts 2>/dev/null | cut -f1)" -- "$cur")) ;;
      esac ;;
  esac
  return 0
}
complete -F _radioctl radioctl
`;
}

// Run as a program (not imported by a test): print the page asked for.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const pages: Record<string, () => string> = { radiod: radiodPage, radioctl: radioctlPage, completion };
  const what = process.argv[2] ?? '';
  if (what in pages) process.stdout.write(pages[what]!());
  else {
    process.stderr.write('usage: node packaging/manual.ts radiod|radioctl|completion\n');
    process.exitCode = 1;
  }
}
