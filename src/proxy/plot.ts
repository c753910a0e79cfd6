/**
 * A mount's listeners over the last hour as a small inline SVG for the
 * status page: a filled line from the main thread's samples, scaled to the
 * largest count, with that count and the time span written on it. Numbers
 * only go into the markup, so nothing in it needs escaping.
 */

export interface PlotSize {
  width: number;
  height: number;
}

const SIZE: PlotSize = { width: 360, height: 72 };
/** Room at the top for the label. */
const TOP = 14;

/** `samples` oldest first, one every `stepSeconds`; the last is now. */
export function plotSvg(samples: readonly number[], stepSeconds: number, size: PlotSize = SIZE): string {
  const { width: w, height: h } = size;
  const max = Math.max(1, ...samples);
  const n = samples.length;
  // Always the last hour across: a plot with few samples grows from the right.
  const slots = Math.max(n, Math.round(3600 / stepSeconds) + 1);
  const x = (i: number): number => Math.round(((slots - n + i) / (slots - 1)) * w * 10) / 10;
  const y = (v: number): number => Math.round((h - ((h - TOP) * v) / max) * 10) / 10;
  const pts = samples.map((v, i) => `${x(i)},${y(v)}`);
  if (n === 1) pts.unshift(`${Math.max(0, x(0) - 4)},${y(samples[0]!)}`);
  const line = pts.join(' ');
  const area = n === 0 ? '' : `<polygon class="area" points="${pts[0]!.split(',')[0]},${h} ${line} ${w},${h}"/>`;
  const minutes = Math.round(((slots - 1) * stepSeconds) / 60);
  return `<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="listeners over the last ${minutes} minutes, at most ${max}">`
    + `<line class="axis" x1="0" y1="${h - 0.5}" x2="${w}" y2="${h - 0.5}"/>${area}`
    + (n === 0 ? '' : `<polyline class="line" points="${line}"/>`)
    + `<text x="2" y="11">${max} max</text><text x="${w - 2}" y="11" text-anchor="end">last ${minutes} min</text></svg>`;
}
