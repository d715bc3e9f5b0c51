// Puts a Node single-executable blob into a copy of the node binary (Linux,
// ELF64 little-endian), as the postject tool does, without a dependency:
// Node's runtime looks for the blob in a PT_NOTE segment holding a note named
// NODE_SEA_BLOB (deps/postject/postject-api.h: it walks the program headers
// of the running executable), and reads it only when the sentinel fuse string
// ends in ":1".
//
// The program header table has no room for the two headers needed (a PT_LOAD
// that maps the blob, a PT_NOTE that points at it), so it moves: a copy with
// them is appended at the end of the file, page-aligned, together with the
// note, and the whole of that tail is mapped by the new PT_LOAD at the same
// file-to-address offset as the first PT_LOAD. The kernel and ld.so find the
// table through e_phoff and PT_PHDR, which are updated. Sections are not
// touched (the section header table stays where it is, valid).
//
//   file: [ original binary ... ][pad to page][ phdrs (n+2) ][ note header | "NODE_SEA_BLOB\0" pad | blob pad ]
//                                             ^ X            ^ new PT_NOTE
//                                             new PT_LOAD maps X.. at vaddr X + (first PT_LOAD vaddr - offset)
import { readFileSync, writeFileSync, chmodSync } from 'node:fs';

const PT_LOAD = 1;
const PT_NOTE = 4;
const PT_PHDR = 6;
const PF_R = 4;
const PAGE = 0x1000;
const PHDR_SIZE = 56;
const NOTE_NAME = 'NODE_SEA_BLOB';
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

const align = (n, a) => Math.ceil(n / a) * a;

function fail(message) {
  throw new Error(`sea-inject: ${message}`);
}

function readPhdr(buf, off) {
  return {
    type: buf.readUInt32LE(off),
    flags: buf.readUInt32LE(off + 4),
    offset: Number(buf.readBigUInt64LE(off + 8)),
    vaddr: Number(buf.readBigUInt64LE(off + 16)),
    paddr: Number(buf.readBigUInt64LE(off + 24)),
    filesz: Number(buf.readBigUInt64LE(off + 32)),
    memsz: Number(buf.readBigUInt64LE(off + 40)),
    align: Number(buf.readBigUInt64LE(off + 48)),
  };
}

function writePhdr(buf, off, p) {
  buf.writeUInt32LE(p.type, off);
  buf.writeUInt32LE(p.flags, off + 4);
  buf.writeBigUInt64LE(BigInt(p.offset), off + 8);
  buf.writeBigUInt64LE(BigInt(p.vaddr), off + 16);
  buf.writeBigUInt64LE(BigInt(p.paddr), off + 24);
  buf.writeBigUInt64LE(BigInt(p.filesz), off + 32);
  buf.writeBigUInt64LE(BigInt(p.memsz), off + 40);
  buf.writeBigUInt64LE(BigInt(p.align), off + 48);
}

/** The ELF note: namesz, descsz, type, then name and descriptor, each padded to 4 bytes. */
function note(blob) {
  const name = Buffer.from(`${NOTE_NAME}\0`);
  const head = Buffer.alloc(12);
  head.writeUInt32LE(name.length, 0);
  head.writeUInt32LE(blob.length, 4);
  head.writeUInt32LE(0, 8);
  return Buffer.concat([head, name, Buffer.alloc(align(name.length, 4) - name.length), blob, Buffer.alloc(align(blob.length, 4) - blob.length)]);
}

/** Returns the binary `node` with `blob` injected and the fuse flipped. */
export function injectSeaBlob(node, blob) {
  if (node.readUInt32BE(0) !== 0x7f454c46) fail('not an ELF file');
  if (node[4] !== 2 || node[5] !== 1) fail('not a 64-bit little-endian ELF file');
  if (node.indexOf(Buffer.from(NOTE_NAME)) !== -1 && node.indexOf(Buffer.from(`${FUSE}:1`)) !== -1) fail('the binary already holds a blob');
  const fuseAt = node.indexOf(Buffer.from(`${FUSE}:0`));
  if (fuseAt === -1) fail(`no ${FUSE} in the binary: not a Node that supports single executables`);
  if (node.indexOf(Buffer.from(FUSE), fuseAt + 1) !== -1) fail('the fuse occurs more than once');

  const phoff = Number(node.readBigUInt64LE(32));
  const phentsize = node.readUInt16LE(54);
  const phnum = node.readUInt16LE(56);
  if (phentsize !== PHDR_SIZE) fail(`unexpected program header size ${phentsize}`);
  const phdrs = Array.from({ length: phnum }, (_, i) => readPhdr(node, phoff + i * PHDR_SIZE));
  const loads = phdrs.filter((p) => p.type === PT_LOAD);
  if (loads.length === 0) fail('no PT_LOAD segment');
  const first = loads[0];
  const bias = first.vaddr - first.offset; // file offset -> address, as for the first segment
  const end = Math.max(...loads.map((p) => p.vaddr + p.memsz));

  const tail = align(node.length, PAGE);
  const tableSize = (phnum + 2) * PHDR_SIZE;
  const noteBytes = note(blob);
  const noteAt = tail + align(tableSize, 8);
  const size = noteAt - tail + noteBytes.length;
  if (tail + bias < end) fail('the appended segment would overlap the program in memory');

  const load = { type: PT_LOAD, flags: PF_R, offset: tail, vaddr: tail + bias, paddr: tail + bias, filesz: size, memsz: size, align: PAGE };
  const noteHdr = { type: PT_NOTE, flags: PF_R, offset: noteAt, vaddr: noteAt + bias, paddr: noteAt + bias, filesz: noteBytes.length, memsz: noteBytes.length, align: 4 };
  // PT_PHDR first, PT_LOADs in address order (the new one is the highest), the new PT_NOTE after the others.
  const out = [];
  const lastLoad = phdrs.lastIndexOf(loads[loads.length - 1]);
  const lastNote = phdrs.map((p) => p.type).lastIndexOf(PT_NOTE);
  phdrs.forEach((p, i) => {
    if (p.type === PT_PHDR) out.push({ ...p, offset: tail, vaddr: tail + bias, paddr: tail + bias, filesz: tableSize, memsz: tableSize });
    else out.push(p);
    if (i === lastLoad) out.push(load);
    if (i === lastNote) out.push(noteHdr);
  });
  if (lastNote === -1) out.push(noteHdr);

  const result = Buffer.alloc(tail + size);
  node.copy(result);
  out.forEach((p, i) => writePhdr(result, tail + i * PHDR_SIZE, p));
  noteBytes.copy(result, noteAt);
  result.writeBigUInt64LE(BigInt(tail), 32); // e_phoff
  result.writeUInt16LE(out.length, 56); // e_phnum
  result.write('1', fuseAt + FUSE.length + 1, 'latin1');
  return result;
}

/** node scripts/sea-inject.mjs NODE BLOB OUT */
if (import.meta.url === `file://${process.argv[1]}`) {
  const [node, blob, output] = process.argv.slice(2);
  if (output === undefined) fail('usage: sea-inject.mjs NODE BLOB OUT');
  writeFileSync(output, injectSeaBlob(readFileSync(node), readFileSync(blob)));
  chmodSync(output, 0o755);
}
