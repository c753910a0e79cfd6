/**
 * XML text escaping for generated Icecast configuration. Every value that
 * comes from users (mount paths, credentials, relay URLs) goes through
 * `x()`, so no value can open or close an element, an attribute or a CDATA
 * section. Characters XML 1.0 cannot carry at all are refused, not dropped.
 */

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };
// XML 1.0 Char production: tab, LF, CR, and U+0020 and above (less surrogates and U+FFFE/U+FFFF).
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;

export function x(value: string | number): string {
  const s = String(value);
  if (FORBIDDEN.test(s)) throw new Error(`value cannot be written to XML: ${JSON.stringify(s)}`);
  return s.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

/** `<name>value</name>` with the value escaped. */
export function el(name: string, value: string | number): string {
  return `<${name}>${x(value)}</${name}>`;
}
