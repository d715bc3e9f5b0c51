/**
 * A V8 setting for every `shoal` process, made before its command's modules
 * load: it matters to the short-lived ones, such as `shoal get`.
 *
 * V8's memory reducer arms itself when a small heap first grows (its "for small
 * heaps" rule). About 8 s later, once the process looks idle, it runs two full
 * collections to give memory back. A `shoal get` through a daemon spends most of
 * its life waiting for the daemon, so each get of more than 8 s paid for those
 * collections: 10–40 ms of CPU unloaded, about a fifth of the get's own CPU, and more
 * on a busy host, where every peer pays it at once. The memory goes back when the
 * process exits in any case. A full collection the heap actually needs still runs,
 * and so does the reducer after one: only the arming before the first full
 * collection is turned off. `shoal daemon` and `shoal scheduler` keep V8's
 * default: a service idle for hours should give its memory back.
 * Measured in docs/benchmarks.md, "A get's idle-time collections".
 */
import { setFlagsFromString } from 'node:v8';
import { SERVICES } from './leak-guard.js';

/**
 * The setting for the command `command` (argv[0]), made by ./main.ts before
 * anything of the command loads: V8's default for a service, the reducer's
 * early arming off for everything else.
 */
export function heapFor(command: string | undefined): void {
  // A flag V8 reads each time the heap grows, so setting it after start-up takes effect (Node 20 and 24).
  setFlagsFromString(SERVICES.has(command ?? '') ? '--memory-reducer-for-small-heaps' : '--no-memory-reducer-for-small-heaps');
}
