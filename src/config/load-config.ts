/**
 * Builds radiod's Config from the command line, the environment and the
 * config file, highest first, then the defaults in settings.ts. Every bad
 * value becomes one RadioError line that names the setting and where it came
 * from; unknown flags and unknown file keys are refused.
 */
import { existsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { promisify } from 'node:util';
import { RadioError } from '../core/errors.ts';
import { DEFAULT_CONFIG_FILE, readConfigFile } from './config-file.ts';
import { SETTINGS, parseSetting, type Config, type SettingSpec } from './settings.ts';

export interface ParsedArgs {
  /** Values given as flags, by setting key. */
  flags: Map<string, string>;
  /** Positional arguments, in order. */
  positional: string[];
  /** Switches without a setting (e.g. --help, --json). */
  switches: Set<string>;
  configFile?: string;
}

export interface ArgSpec {
  /** Flags that take a value, besides the settings, e.g. --timeout. */
  valueFlags?: readonly string[];
  /** Flags that take no value, e.g. --json. */
  switchFlags?: readonly string[];
  /** Settings to accept as flags; default all. */
  settings?: readonly SettingSpec[];
}

/**
 * Splits argv into setting flags, other flags and positionals. Accepts
 * `--flag value` and `--flag=value`; a boolean setting given bare means true.
 */
export function parseArgs(argv: readonly string[], spec: ArgSpec = {}): ParsedArgs {
  const settings = spec.settings ?? SETTINGS;
  const byFlag = new Map(settings.map((s) => [s.flag, s]));
  const valueFlags = new Set(['--config', ...(spec.valueFlags ?? [])]);
  const switchFlags = new Set(['--help', '-h', '--version', ...(spec.switchFlags ?? [])]);
  const out: ParsedArgs = { flags: new Map(), positional: [], switches: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      out.positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      out.positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const setting = byFlag.get(name);
    if (switchFlags.has(name)) {
      if (inline !== undefined) throw new RadioError('RADIOAI_ERR_USAGE', `${name} takes no value`);
      out.switches.add(name === '-h' ? '--help' : name);
      continue;
    }
    if (!setting && !valueFlags.has(name)) throw new RadioError('RADIOAI_ERR_USAGE', `unknown option ${name}`);
    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      // A boolean flag takes the next word only when it is a boolean: `radioctl --etcd-allow-plaintext list-mounts`.
      if (setting?.isBoolean && (next === undefined || !/^(true|false|1|0|yes|no|on|off)$/i.test(next))) value = 'true';
      else if (next === undefined) throw new RadioError('RADIOAI_ERR_USAGE', `${name} needs a value`);
      else {
        value = next;
        i++;
      }
    }
    if (name === '--config') out.configFile = value;
    else if (setting) out.flags.set(setting.key, value);
    else out.flags.set(name, value);
  }
  return out;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Resolves the default PUBLIC_IP; replaceable so tests need no DNS. */
  defaultPublicIps?: () => Promise<string[]>;
}

/** The addresses `hostname -f` resolves to, as docs/configuration.md says. */
export async function hostAddresses(): Promise<string[]> {
  const { stdout } = await promisify(execFile)('hostname', ['-f'], { timeout: 5000 });
  const fqdn = stdout.trim();
  const found = await lookup(fqdn, { all: true });
  return [...new Set(found.map((a) => a.address))];
}

/** The settings file radiod reads for `argv` and the environment. */
export function configFileName(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): string {
  try {
    return parseArgs(argv).configFile ?? env.RADIOAI_CONFIG ?? DEFAULT_CONFIG_FILE;
  } catch {
    return env.RADIOAI_CONFIG ?? DEFAULT_CONFIG_FILE;
  }
}

/** The raw value of each setting with where it came from, before parsing. */
export function gatherRaw(
  args: ParsedArgs,
  env: NodeJS.ProcessEnv,
  settings: readonly SettingSpec[] = SETTINGS,
): Map<string, { raw: string; origin: string }> {
  const explicit = args.configFile ?? env.RADIOAI_CONFIG;
  const file = explicit ?? DEFAULT_CONFIG_FILE;
  const entries = readConfigFile(file, explicit !== undefined);
  const known = new Set(SETTINGS.map((s) => s.env));
  for (const [key, { line }] of entries) {
    if (!known.has(key)) throw new RadioError('RADIOAI_ERR_CONFIG', `${file}:${line}: unknown setting ${key}`);
  }
  const raw = new Map<string, { raw: string; origin: string }>();
  for (const s of settings) {
    const flag = args.flags.get(s.key);
    if (flag !== undefined) raw.set(s.key, { raw: flag, origin: `flag ${s.flag}` });
    else if (env[s.env] !== undefined && env[s.env] !== '') raw.set(s.key, { raw: env[s.env]!, origin: 'environment' });
    else if (entries.has(s.env)) raw.set(s.key, { raw: entries.get(s.env)!.value, origin: `${file}:${entries.get(s.env)!.line}` });
  }
  return raw;
}

/**
 * Each setting of `specs` from its raw value, else what is found at
 * start-up, else its default, in table order (a computed default may use
 * the settings before it); the table says what an empty one means.
 */
export async function resolveSettings(
  specs: readonly SettingSpec[],
  raw: Map<string, { raw: string; origin: string }>,
  discover: () => Promise<string[]> = hostAddresses,
): Promise<Partial<Config>> {
  const config: Record<string, unknown> = {};
  for (const s of specs) {
    let given = raw.get(s.key);
    if (!given && s.discover !== undefined) {
      let found: string[] = [];
      try {
        found = await discover();
      } catch {
        // Reported below as a missing value, which names the setting to set.
      }
      if (found.length > 0) given = { raw: found.join(','), origin: s.discover };
    }
    if (!given) {
      const d = typeof s.default === 'function' ? s.default(config) : s.default;
      if (d === undefined || d === '') {
        if (s.required) throw new RadioError(s.required.code, `${s.env} (${s.flag}): ${s.required.text}`);
        if (s.empty !== undefined) {
          config[s.key] = s.empty;
          continue;
        }
      }
      given = { raw: d ?? '', origin: 'default' };
    }
    config[s.key] = parseSetting(s, given.raw, given.origin);
  }
  return config;
}

export async function loadConfig(argv: readonly string[], opts: LoadOptions = {}): Promise<Config> {
  const env = opts.env ?? process.env;
  const args = parseArgs(argv);
  if (args.positional.length > 0) throw new RadioError('RADIOAI_ERR_USAGE', `unexpected argument "${args.positional[0]}"`);
  const c = await resolveSettings(SETTINGS, gatherRaw(args, env), opts.defaultPublicIps) as Config;
  const ports: [string, number][] = [['HTTP_PORT', c.httpPort], ['DNS_PORT', c.dnsPort], ['ICECAST_PORT', c.icecastPort], ['ICECAST_INTERNAL_PORT', c.icecastInternalPort]];
  // HTTPS_PORT's default, 443, is only taken when there is a certificate: a node behind a TLS proxy may well listen on 443 itself.
  if (existsSync(c.tlsCert) && existsSync(c.tlsKey)) ports.push(['HTTPS_PORT', c.httpsPort]);
  for (let i = 0; i < ports.length; i++) {
    for (let j = i + 1; j < ports.length; j++) {
      if (ports[i]![1] === ports[j]![1]) {
        throw new RadioError('RADIOAI_ERR_CONFIG', `${ports[j]![0]}: port ${ports[j]![1]} is already ${ports[i]![0]}`);
      }
    }
  }
  return c;
}

export function usage(): string {
  const lines = SETTINGS.map((s) => `  ${(s.flag + (s.isBoolean ? '[=BOOL]' : ' VALUE')).padEnd(34)} ${s.env.padEnd(19)} ${s.help}`);
  return [
    'usage: radiod [options]',
    '',
    'Each setting comes from, highest first: the flag, the environment variable,',
    `the file ${DEFAULT_CONFIG_FILE} (or --config FILE), the default.`,
    '',
    ...lines,
    `  ${'--config FILE'.padEnd(34)} ${'RADIOAI_CONFIG'.padEnd(19)} the KEY=VALUE settings file`,
  ].join('\n');
}
