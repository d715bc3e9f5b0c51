/**
 * Header handling of a forward proxy (RFC 9110 §7.6): hop-by-hop headers —
 * Connection and every header it names, Keep-Alive, Proxy-Connection,
 * Proxy-Authorization, Proxy-Authenticate, TE, Trailer, Transfer-Encoding,
 * Upgrade — are removed in both directions; a Via entry is added; a Via that
 * already carries this proxy's name is a loop. Pure.
 */

export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

export type HeaderPairs = Array<[string, string]>;

/** Node's rawHeaders ([name, value, name, value, …]) as pairs, names as received. */
export function pairs(raw: readonly string[]): HeaderPairs {
  const out: HeaderPairs = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}

/** The end-to-end headers: hop-by-hop ones and those Connection names removed. */
export function endToEnd(headers: readonly (readonly [string, string])[]): HeaderPairs {
  const named = new Set<string>();
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    if (lower === 'connection' || lower === 'proxy-connection') for (const token of value.split(',')) named.add(token.trim().toLowerCase());
  }
  return headers.filter(([name]) => {
    const lower = name.toLowerCase();
    return !HOP_BY_HOP.has(lower) && !named.has(lower);
  }) as HeaderPairs;
}

/** An undici response header object as pairs (arrays become one pair per value). */
export function fromObject(headers: Record<string, string | string[] | undefined>): HeaderPairs {
  const out: HeaderPairs = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push([name, v]);
    else out.push([name, value]);
  }
  return out;
}

/** `1.1 <name>`, appended to any Via already there. */
export function withVia(headers: HeaderPairs, name: string): HeaderPairs {
  const entry = `1.1 ${name}`;
  const existing = headers.filter(([n]) => n.toLowerCase() === 'via').map(([, v]) => v);
  const rest = headers.filter(([n]) => n.toLowerCase() !== 'via');
  rest.push(['Via', [...existing, entry].join(', ')]);
  return rest;
}

/** True when a Via header lists `name` as a receiving proxy: the request went round in a loop. */
export function viaLoops(headers: readonly (readonly [string, string])[], name: string): boolean {
  for (const [n, value] of headers) {
    if (n.toLowerCase() !== 'via') continue;
    for (const entry of value.split(',')) {
      const parts = entry.trim().split(/\s+/);
      if (parts[1] === name) return true;
    }
  }
  return false;
}

export function without(headers: HeaderPairs, names: ReadonlySet<string>): HeaderPairs {
  return headers.filter(([n]) => !names.has(n.toLowerCase()));
}
