/** A byte progress bar on a TTY (stderr), nothing otherwise. */

export interface ProgressView {
  /** A bar is shown: progress reports are wanted. */
  readonly shown: boolean;
  readonly update: (done: number, total: number | undefined) => void;
  readonly stop: () => void;
}

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export async function createProgress(stream: NodeJS.WritableStream & { isTTY?: boolean }, enabled: boolean): Promise<ProgressView> {
  if (!enabled || stream.isTTY !== true) return { shown: false, update() {}, stop() {} };
  const { default: cliProgress } = await import('cli-progress'); // loaded only for a terminal
  const bar = new cliProgress.SingleBar(
    {
      stream: stream,
      format: '{bar} {percentage}% | {doneH}/{totalH} | {speed}/s | ETA {eta_formatted}',
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
      if (!running) {
        bar.start(t, done, { doneH: human(done), totalH: human(t), speed });
        running = true;
      }
      bar.setTotal(t);
      bar.update(done, { doneH: human(done), totalH: human(t), speed });
    },
    stop() {
      if (running) bar.stop();
    },
  };
}
