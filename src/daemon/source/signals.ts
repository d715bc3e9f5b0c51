/** A signal that aborts when any of its sources does; `dispose()` detaches it from them. */
export interface LinkedSignal {
  readonly signal: AbortSignal;
  dispose(): void;
}

export function linkSignals(...sources: ReadonlyArray<AbortSignal | undefined>): LinkedSignal {
  const controller = new AbortController();
  const live = sources.filter((s): s is AbortSignal => s !== undefined);
  const dispose = (): void => {
    for (const source of live) source.removeEventListener('abort', onAbort);
  };
  function onAbort(this: AbortSignal): void {
    controller.abort(this.reason);
    dispose();
  }
  for (const source of live) {
    if (source.aborted) {
      controller.abort(source.reason);
      dispose();
      break;
    }
    source.addEventListener('abort', onAbort, { once: true });
  }
  return { signal: controller.signal, dispose };
}
