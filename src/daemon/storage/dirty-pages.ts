/**
 * Is the kernel about to throttle writers? Linux makes a process that dirties
 * page-cache pages sleep inside write(2) once dirty + writeback memory passes
 * half way between the background and the hard dirty thresholds
 * (balance_dirty_pages). The store writes synchronously on the event loop
 * only while memory is well below that point, so the loop never sleeps on a
 * slow disk. Read from /proc at most once a second, asynchronously; where
 * /proc is absent (not Linux) the answer is always "near".
 */
import { readFile } from 'node:fs/promises';

const REFRESH_MS = 1000;
/** Fraction of the throttling point at which writes leave the event loop. */
const MARGIN = 0.75;

export interface DirtyState {
  dirtyBytes: number;
  throttleAtBytes: number;
}

export class DirtyPages {
  #near = true;
  #checkedAt = 0;
  #refreshing = false;
  readonly #read: () => Promise<DirtyState | undefined>;

  /** `read` is first called by the first near(), which answers "near" until it resolves. */
  constructor(read: () => Promise<DirtyState | undefined> = readProcDirtyState) {
    this.#read = read;
  }

  /** True when writes may soon be throttled (or nothing is known). Never blocks. */
  near(): boolean {
    if (Date.now() - this.#checkedAt >= REFRESH_MS) this.#refresh();
    return this.#near;
  }

  #refresh(): void {
    if (this.#refreshing) return;
    this.#refreshing = true;
    this.#checkedAt = Date.now();
    void this.#read()
      .then((state) => {
        this.#near = state === undefined || state.dirtyBytes >= MARGIN * state.throttleAtBytes;
      })
      .catch(() => {
        this.#near = true;
      })
      .finally(() => {
        this.#refreshing = false;
      });
  }
}

/** The vm.dirty_* settings change rarely: read again after this long. */
const SETTINGS_TTL_MS = 60_000;
let settings: { at: number; values: Promise<[number, number, number, number]> } | undefined;

function dirtySettings(): Promise<[number, number, number, number]> {
  if (settings === undefined || Date.now() - settings.at >= SETTINGS_TTL_MS) {
    const vm = (name: string): Promise<number> => readFile(`/proc/sys/vm/${name}`, 'latin1').then(Number);
    const values = Promise.all([vm('dirty_ratio'), vm('dirty_background_ratio'), vm('dirty_bytes'), vm('dirty_background_bytes')]);
    settings = { at: Date.now(), values };
    values.catch(() => (settings = undefined));
  }
  return settings.values;
}

/**
 * Dirty + writeback bytes, and where throttling starts: (background + hard
 * threshold) / 2. One file read a second (/proc/meminfo); the settings are
 * read once a minute.
 */
export async function readProcDirtyState(): Promise<DirtyState | undefined> {
  const [meminfo, [ratio, bgRatio, bytes, bgBytes]] = await Promise.all([readFile('/proc/meminfo', 'latin1'), dirtySettings()]);
  const kb = (field: string): number | undefined => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(meminfo);
    return m === null ? undefined : Number(m[1]) * 1024;
  };
  const available = kb('MemAvailable');
  const dirty = kb('Dirty');
  const writeback = kb('Writeback');
  if (available === undefined || dirty === undefined || writeback === undefined) return undefined;
  const limit = (b: number, r: number): number => (b > 0 ? b : (r / 100) * available);
  const hard = limit(bytes, ratio);
  const background = limit(bgBytes, bgRatio);
  if (!(hard > 0) || !(background >= 0)) return undefined;
  return { dirtyBytes: dirty + writeback, throttleAtBytes: (hard + background) / 2 };
}
