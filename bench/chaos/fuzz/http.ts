/**
 * Malformed HTTP/1.1 for the HTTP listeners (upload, local API, mirror,
 * proxy): a request built from the listener's own grammar (its methods and
 * paths), then mangled: bad request lines, absurd or duplicate headers,
 * lying lengths, bad chunked bodies, NULs and high bytes, binary noise,
 * pipelines, and endings by FIN, RST or waiting.
 */
import type { Rng } from '../rng.js';
import { split, type Case } from './send.js';

export interface HttpGrammar {
  /** Request targets the listener knows (mangled or not). */
  readonly targets: readonly string[];
  readonly methods: readonly string[];
  /** Bodies it reads (JSON for the API). */
  readonly bodies?: readonly string[];
}

const WEIRD = ['', ' ', '\0', '\r', '\n', '\r\n\r\n', '\t', '%00', '%zz', '../', '..%2f', '\u00ff', '\u2028', 'a'.repeat(70_000), '0x', '-1', '99999999999999999999', '1e400'];

function mangle(rng: Rng, s: string): string {
  switch (rng.int(0, 6)) {
    case 0:
      return s;
    case 1: {
      const at = rng.int(0, s.length);
      return s.slice(0, at) + rng.pick(WEIRD) + s.slice(at);
    }
    case 2:
      return s.slice(0, rng.int(0, s.length));
    case 3:
      return s + rng.text(rng.int(1, 200));
    case 4:
      return s.length < 1000 ? s.repeat(rng.int(2, 50)) : s;
    case 5:
      return rng.text(rng.int(0, 40), '\0\x01\x7f\xff%/?#:@ \t');
    default:
      return rng.pick(WEIRD);
  }
}

function headerLines(rng: Rng, bodyLength: number): string[] {
  const lines: string[] = ['Host: 127.0.0.1'];
  const n = rng.int(0, 8);
  for (let i = 0; i < n; i++) {
    switch (rng.int(0, 9)) {
      case 0:
        lines.push(`Content-Length: ${rng.pick([String(bodyLength), String(bodyLength + rng.int(1, 100)), '-1', 'abc', '99999999999999999999', `${bodyLength}, ${bodyLength + 1}`])}`);
        break;
      case 1:
        lines.push(`Transfer-Encoding: ${rng.pick(['chunked', 'gzip, chunked', 'identity', 'chunked, chunked', 'xchunked'])}`);
        break;
      case 2:
        lines.push(`Range: ${rng.pick(['bytes=0-', 'bytes=-1', 'bytes=5-1', 'bytes=0-0,1-1,2-2', 'bytes=99999999999999999999-', 'items=0-1'])}`);
        break;
      case 3:
        lines.push(`X-${rng.text(rng.int(1, 20))}: ${rng.text(rng.int(0, 9000))}`);
        break;
      case 4:
        lines.push(rng.text(rng.int(1, 40))); // a line without a colon
        break;
      case 5:
        lines.push(`Connection: ${rng.pick(['close', 'keep-alive', 'upgrade', 'Transfer-Encoding'])}`);
        break;
      case 6:
        lines.push(`Expect: 100-continue`);
        break;
      case 7:
        lines.push(`Via: 1.1 shoal`);
        break;
      case 8:
        lines.push(`Proxy-Authorization: Basic ${rng.text(rng.int(0, 50))}`);
        break;
      default:
        lines.push(`${mangle(rng, 'Accept')}: ${mangle(rng, '*/*')}`);
    }
  }
  return lines;
}

function chunkedBody(rng: Rng, body: string): string {
  const parts = [`${body.length.toString(16)}\r\n${body}\r\n`];
  if (rng.chance(0.5)) parts.push(rng.pick(['zz\r\n', 'ffffffffffffffff\r\n', '5\r\nab\r\n', '-1\r\n', '0\r\nX: y\r\n']));
  parts.push('0\r\n\r\n');
  return parts.join('');
}

/** One request as bytes (before the case mangles how it is sent). */
function request(rng: Rng, g: HttpGrammar): Buffer {
  const method = rng.chance(0.8) ? rng.pick(g.methods) : mangle(rng, rng.pick(['GET', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PRI', 'get']));
  const target = rng.chance(0.3) ? rng.pick(g.targets) : mangle(rng, rng.pick(g.targets));
  const version = rng.chance(0.85) ? 'HTTP/1.1' : rng.pick(['HTTP/1.0', 'HTTP/2.0', 'HTTP/9.9', 'HTTP/1.1x', '', 'http/1.1']);
  let body = g.bodies !== undefined && rng.chance(0.6) ? rng.pick(g.bodies) : rng.chance(0.2) ? rng.text(rng.int(0, 2000)) : '';
  if (rng.chance(0.3)) body = mangle(rng, body);
  const headers = headerLines(rng, Buffer.byteLength(body));
  const chunked = headers.some((h) => h.startsWith('Transfer-Encoding: chunked'));
  if (!chunked && body !== '' && !headers.some((h) => h.startsWith('Content-Length'))) headers.push(`Content-Length: ${Buffer.byteLength(body)}`);
  const eol = rng.chance(0.9) ? '\r\n' : rng.pick(['\n', '\r', '\n\r']);
  const head = `${method} ${target} ${version}${eol}${headers.join(eol)}${eol}${eol}`;
  return Buffer.from(head + (chunked ? chunkedBody(rng, body) : body), 'latin1');
}

/** A malformed HTTP case for a listener with grammar `g`. */
export function httpCase(rng: Rng, g: HttpGrammar): Case {
  const kind = rng.int(0, 9);
  let data: Buffer;
  let what: string;
  if (kind === 0) {
    data = rng.bytes(rng.int(1, 4096));
    what = 'random bytes';
  } else if (kind === 1) {
    const wanted = rng.int(2, 300);
    const requests: Buffer[] = [];
    for (let size = 0; requests.length < wanted && size < 1024 * 1024; ) size += requests[requests.push(request(rng, g)) - 1]!.length;
    data = Buffer.concat(requests);
    what = `${requests.length} pipelined requests`;
  } else {
    data = request(rng, g);
    if (kind === 2) data = data.subarray(0, rng.int(0, data.length)); // cut anywhere
    what = 'request';
  }
  if (kind === 3 && g.methods.includes('CONNECT')) return tunnelCase(rng, g);
  const cuts = Array.from({ length: rng.int(0, 4) }, () => rng.int(0, data.length));
  const then = rng.pick<Case['then']>(['end', 'reset', { readMs: rng.int(10, 200) }, { readMs: rng.int(5, 100), reset: true }]);
  return { what: `${what}: ${JSON.stringify(data.subarray(0, 120).toString('latin1'))}${data.length > 120 ? '…' : ''} (${data.length} B, then ${typeof then === 'string' ? then : `read ${then.readMs} ms`})`, chunks: split(data, cuts), then };
}

/** A CONNECT (to one of the grammar's targets, mangled or not), then bytes inside the tunnel, then FIN, RST or a wait. */
function tunnelCase(rng: Rng, g: HttpGrammar): Case {
  const target = rng.chance(0.5) ? rng.pick(g.targets) : mangle(rng, rng.pick(g.targets));
  const head = Buffer.from(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`, 'latin1');
  const inner = rng.chance(0.7) ? request(rng, g) : rng.bytes(rng.int(0, 500));
  const then = rng.pick<Case['then']>(['end', 'reset', { readMs: rng.int(10, 300) }, { readMs: rng.int(5, 200), reset: true }]);
  const chunks = inner.length > 0 && rng.chance(0.8) ? [head, inner] : [head];
  return {
    what: `CONNECT ${JSON.stringify(target.slice(0, 80))}, then ${chunks.length > 1 ? `${inner.length} B inside: ${JSON.stringify(inner.subarray(0, 60).toString('latin1'))}` : 'nothing'} (then ${typeof then === 'string' ? then : `read ${then.readMs} ms${then.reset === true ? ', reset' : ''}`})`,
    chunks,
    then,
    gapMs: rng.int(0, 50),
  };
}
