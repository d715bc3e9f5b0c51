/**
 * Page-aligned buffers, for reads and writes with O_DIRECT (which want the
 * buffer's address, the file offset and the length aligned to the device's
 * logical block; DIRECT_ALIGN covers every common one). JavaScript cannot
 * see a buffer's address, but V8 maps a WebAssembly memory page-aligned, so
 * the buffers are views of such memories: one per large buffer, or slabs of
 * SLAB_BYTES cut into equal, aligned slots for smaller ones (a memory per
 * 1 MiB piece would reserve gigabytes of address space each).
 */

export const DIRECT_ALIGN = 4096;
const WASM_PAGE = 64 * 1024;
const SLAB_BYTES = 32 * 1024 * 1024;

/** The ArrayBuffers of the memories made here: only views of these are known to be aligned. */
const alignedBackings = new WeakSet<ArrayBufferLike>();

interface WasmMemoryConstructor {
  new (descriptor: { initial: number; maximum: number }): { buffer: ArrayBuffer };
}

/**
 * A page-aligned buffer of at least `bytes`. V8 reserves address space for
 * each memory and caps the total (about 1 TiB on x64); past it the memory
 * cannot be made, and an ordinary buffer is returned (correct, but not
 * aligned: directWritable then says no, and such a piece is written through
 * the page cache).
 */
function memory(bytes: number): Buffer {
  const pages = Math.ceil(bytes / WASM_PAGE);
  const { Memory } = (globalThis as unknown as { WebAssembly: { Memory: WasmMemoryConstructor } }).WebAssembly;
  let backing: ArrayBuffer;
  try {
    backing = new Memory({ initial: pages, maximum: pages }).buffer;
  } catch {
    return Buffer.allocUnsafeSlow(bytes);
  }
  alignedBackings.add(backing);
  return Buffer.from(backing);
}

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/** A page-aligned buffer of exactly `size` bytes, in a memory of its own. */
export function alignedBuffer(size: number): Buffer {
  return memory(size).subarray(0, size);
}

/**
 * Aligned buffers of one capacity each, cut from shared slabs. A slot is
 * never handed out twice: what the caller is done with goes back to a pool
 * (./buffer-pool.ts), or is garbage once no view of its slab is left.
 */
export class AlignedSlabs {
  readonly #spare = new Map<number, Buffer[]>();

  take(capacity: number): Buffer {
    const slot = roundUp(capacity, DIRECT_ALIGN);
    if (slot * 2 > SLAB_BYTES) return alignedBuffer(capacity);
    let spare = this.#spare.get(slot);
    if (spare === undefined || spare.length === 0) {
      const slab = memory(SLAB_BYTES);
      spare = [];
      for (let at = 0; at + slot <= slab.length; at += slot) spare.push(slab.subarray(at, at + capacity));
      spare.reverse();
      this.#spare.set(slot, spare);
    }
    return spare.pop()!;
  }
}

/** The file system refuses O_DIRECT (EINVAL: tmpfs before Linux 6.6, some FUSE and network file systems). */
export function directRefused(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'EINVAL';
}

/** Whether `data` may be written at `offset` with O_DIRECT: an aligned buffer, offset and length. */
export function directWritable(data: Buffer, offset: number): boolean {
  return alignedBackings.has(data.buffer) && data.byteOffset % DIRECT_ALIGN === 0 && data.length % DIRECT_ALIGN === 0 && offset % DIRECT_ALIGN === 0 && data.length > 0;
}
