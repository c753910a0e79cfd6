/**
 * radioctl's tables: tab-separated for scripts (`cut -f2`, `awk -F'\t'`),
 * aligned in columns for a person at a terminal. One function decides, from
 * whether stdout is a terminal, so every table reads the same way.
 */

/** Rows as lines: cells joined by tabs, or padded to each column's width (the last column unpadded). */
export function columns(rows: readonly (readonly (string | number)[])[], aligned: boolean): string[] {
  const cells = rows.map((r) => r.map(String));
  if (!aligned) return cells.map((r) => r.join('\t'));
  const widths: number[] = [];
  for (const r of cells) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, [...c].length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - [...c].length))).join('  ').trimEnd());
}
