/** What a process holds, from /proc: resident memory and open file descriptors. */
import { readFileSync, readdirSync } from 'node:fs';

export interface Usage {
  /** Resident set size, bytes. */
  rss: number;
  /** Open file descriptors. */
  fds: number;
}

/** Undefined when the process is gone. */
export function usageOf(pid: number | undefined): Usage | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    return { rss: Number(kb ?? 0) * 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return undefined;
  }
}

/** The sum over processes (those gone count nothing). */
export function totalUsage(pids: ReadonlyArray<number | undefined>): Usage {
  const total = { rss: 0, fds: 0 };
  for (const pid of pids) {
    const u = usageOf(pid);
    if (u === undefined) continue;
    total.rss += u.rss;
    total.fds += u.fds;
  }
  return total;
}
