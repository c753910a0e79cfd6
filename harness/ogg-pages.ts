/** Ogg pages built by hand for tests: lacing for `body` bytes, no CRC (radiod's splitter does not check it). */
export function oggPage(opts: { bos?: boolean; granule: bigint; serial?: number; body: number; fill?: number }): Buffer {
  const segs: number[] = [];
  for (let left = opts.body; left > 0; left -= 255) segs.push(Math.min(255, left));
  if (opts.body % 255 === 0) segs.push(0);
  const h = Buffer.alloc(27 + segs.length);
  h.write('OggS', 0);
  h[5] = opts.bos ? 2 : 0;
  h.writeBigInt64LE(opts.granule, 6);
  h.writeUInt32LE(opts.serial ?? 7, 14);
  h[26] = segs.length;
  segs.forEach((s, i) => (h[27 + i] = s));
  return Buffer.concat([h, Buffer.alloc(opts.body, opts.fill ?? 0x61)]);
}
