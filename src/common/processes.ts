/**
 * Is a process still running? For files that name their owner by PID (the
 * data directory's lock, `shoal get`'s temporary files), so that what a dead
 * process left is taken over or removed at once. A signal 0 alone is not
 * enough: a zombie (killed, not yet reaped by its parent) answers it like a
 * live process, and a PID can be reused. So, where /proc exists, a process
 * counts as running only when /proc/PID/stat shows it neither a zombie nor
 * started at another time than the one recorded.
 */
import { readFileSync } from 'node:fs';

/** A process as /proc shows it, 'gone' when there is none, undefined when /proc cannot say. */
function procStat(pid: number): { state: string; start: string } | 'gone' | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return undefined;
    return procMounted() ? 'gone' : undefined;
  }
  // "PID (COMM) STATE PPID …": COMM may hold spaces and parentheses; field 22 is the start time.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const start = fields[19];
  return state === undefined || start === undefined ? undefined : { state, start };
}

function procMounted(): boolean {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
}

function signalable(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** When a process started (clock ticks since boot, as /proc says); undefined where /proc is absent. */
export function processStart(pid: number): string | undefined {
  const proc = procStat(pid);
  return typeof proc === 'object' ? proc.start : undefined;
}

/** Whether process `pid` runs (and, with `start`, is the one that started then). */
export function processAlive(pid: number, start?: string): boolean {
  const proc = procStat(pid);
  if (proc === 'gone') return false;
  if (proc === undefined) return signalable(pid);
  if (proc.state === 'Z' || proc.state === 'X') return false;
  return start === undefined || start === proc.start;
}
