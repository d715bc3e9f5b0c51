#!/usr/bin/env node
// The lab's origin: a small node:http static server, run inside the origin
// host's namespace. Serves one directory read-only with 1 MiB read chunks,
// single byte ranges (206/416), HEAD, ETag, Last-Modified and If-Range.
// A directory (a path ending in /) is listed as nginx's autoindex does (HTML),
// for `shoal get --recursive` and the many-files benchmark (bench/lab/files.ts).
// GET /__stats answers {"bytes":N,"requests":N,"byPeer":{ip:bytes}}: body
// bytes written per client address, so the lab can tell loopback (the Shoal
// seed) from link traffic.
//
// usage: node static-server.mjs --root DIR --listen HOST:PORT
// prints "static server listening on HOST:PORT" on stderr when ready.
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, normalize, sep } from 'node:path';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const root = opt('--root', process.cwd());
const listen = opt('--listen', '127.0.0.1:8080');
const cut = listen.lastIndexOf(':');
const host = listen.slice(0, cut);
const port = Number(listen.slice(cut + 1));
const CHUNK = 1 << 20;

let bytes = 0;
let requests = 0;
const byPeer = new Map();

function resolvePath(urlPath) {
  const clean = normalize(decodeURIComponent(urlPath.split('?')[0] ?? '/'));
  const full = join(root, clean);
  if (!full.startsWith(root.endsWith(sep) ? root : root + sep)) return undefined;
  return full;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n) => String(n).padStart(2, '0');

/** nginx's HTML autoindex of DIR (ngx_http_autoindex_module.c: names padded to 50, exact sizes). */
function autoindex(uri, dir) {
  const entries = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() || e.isDirectory())
    .map((e) => ({ name: e.name, dir: e.isDirectory(), st: statSync(join(dir, e.name)) }))
    .sort((a, b) => (a.dir !== b.dir ? (a.dir ? -1 : 1) : a.name < b.name ? -1 : 1));
  let out = `<html>\r\n<head><title>Index of ${uri}</title></head>\r\n<body>\r\n<h1>Index of ${uri}</h1><hr><pre><a href="../">../</a>\r\n`;
  for (const e of entries) {
    const d = e.st.mtime;
    const time = `${p2(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}`;
    const shown = e.name.length > 50 ? `${e.name.slice(0, 47)}..&gt;</a>` : `${e.name}${e.dir ? '/' : ''}</a>${' '.repeat(Math.max(0, 50 - e.name.length - (e.dir ? 1 : 0)))}`;
    out += `<a href="${encodeURIComponent(e.name)}${e.dir ? '/' : ''}">${shown} ${time} ${e.dir ? '                  -' : String(e.st.size).padStart(19)}\r\n`;
  }
  return `${out}</pre><hr></body>\r\n</html>\r\n`;
}

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (url === '/__stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ bytes, requests, byPeer: Object.fromEntries(byPeer) }));
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  const path = resolvePath(url);
  if (path !== undefined && url.split('?')[0].endsWith('/')) {
    try {
      const body = autoindex(url.split('?')[0], path);
      res.writeHead(200, { 'content-type': 'text/html', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
    return;
  }
  let st;
  try {
    if (path === undefined) throw new Error('outside root');
    st = statSync(path);
    if (!st.isFile()) throw new Error('not a file');
  } catch {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  if (req.method === 'GET') requests++;
  const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
  const lastModified = st.mtime.toUTCString();
  const headers = { 'accept-ranges': 'bytes', etag, 'last-modified': lastModified, 'content-type': 'application/octet-stream' };
  let start = 0;
  let end = st.size - 1; // inclusive
  let status = 200;
  const range = req.headers['range'];
  const ifRange = req.headers['if-range'];
  const rangeApplies = range !== undefined && (ifRange === undefined || ifRange === etag || ifRange === lastModified);
  if (rangeApplies) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    if (m === null || (m[1] === '' && m[2] === '')) {
      // multi-range or malformed: ignore, send the whole body
    } else {
      if (m[1] === '') {
        const suffix = Number(m[2]);
        start = Math.max(0, st.size - suffix);
      } else {
        start = Number(m[1]);
        if (m[2] !== '') end = Math.min(Number(m[2]), st.size - 1);
      }
      if (start >= st.size || start > end) {
        res.writeHead(416, { 'content-range': `bytes */${st.size}` }).end();
        return;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
    }
  }
  headers['content-length'] = String(end - start + 1);
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || end < start) {
    res.end();
    return;
  }
  const peer = req.socket.remoteAddress ?? '?';
  const stream = createReadStream(path, { start, end, highWaterMark: CHUNK });
  stream.on('data', (chunk) => {
    bytes += chunk.length;
    byPeer.set(peer, (byPeer.get(peer) ?? 0) + chunk.length);
  });
  stream.on('error', () => res.destroy());
  res.on('close', () => stream.destroy());
  stream.pipe(res);
});
server.keepAliveTimeout = 30_000;
server.listen(port, host, () => {
  const a = server.address();
  process.stderr.write(`static server listening on ${a.address}:${a.port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
