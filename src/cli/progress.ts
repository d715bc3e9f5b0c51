/** A byte progress bar on a TTY (stderr), nothing otherwise. */

export interface ProgressView {
  /** A bar is shown: progress reports are wanted. */
  readonly shown: boolean;
  readonly update: (done: number, total: number | undefined) => void;
  readonly stop: () => void;
}

export function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** `label`: text before the bar, read at each update (`get --recursive`: the files done). */
export async function createProgress(stream: NodeJS.WritableStream & { isTTY?: boolean }, enabled: boolean, label?: () => string): Promise<ProgressView> {
  if (!enabled || stream.isTTY !== true) return { shown: false, update() {}, stop() {} };
  const { default: cliProgress } = await import('cli-progress'); // loaded only for a terminal
  const bar = new cliProgress.SingleBar(
    {
      stream: stream,
      format: '{label}{bar} {percentage}% | {doneH}/{totalH} | {speed}/s | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  let running = false;
  return {
    shown: true,
    update(done, total) {
      const t = total ?? Math.max(done, 1);
      const speed = human(done / Math.max(0.001, (Date.now() - started) / 1000));
      const values = { doneH: human(done), totalH: human(t), speed, label: label === undefined ? '' : `${label()} ` };
      if (!running) {
        bar.start(t, done, values);
        running = true;
      }
      bar.setTotal(t);
      bar.update(done, values);
    },
    stop() {
      if (running) bar.stop();
    },
  };
}
