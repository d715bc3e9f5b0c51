/** How the console writes sizes, rates, shares and times. */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function bytes(n: number | undefined): string {
  if (n === undefined) return '?';
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? String(value) : value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]!}`;
}

/** Bytes/s as bytes and bits: links are sold in bits. */
export function rate(n: number | undefined): string {
  if (n === undefined || n <= 0) return '–';
  const bits = n * 8;
  const mbit = bits >= 1e9 ? `${(bits / 1e9).toFixed(1)} Gbit/s` : `${(bits / 1e6).toFixed(bits < 1e7 ? 1 : 0)} Mbit/s`;
  return `${bytes(Math.round(n))}/s (${mbit})`;
}

/** A short rate for an edge label. */
export function shortRate(n: number | undefined): string {
  if (n === undefined || n <= 0) return '';
  return `${bytes(Math.round(n))}/s`;
}

export function percent(share: number | undefined): string {
  return share === undefined ? '?' : `${Math.round(share * 100)}%`;
}

export function clock(at: number): string {
  return new Date(at).toLocaleTimeString(undefined, { hour12: false });
}

export function shortId(id: string): string {
  return id.length > 12 ? id.slice(0, 12) : id;
}
