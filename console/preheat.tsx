/**
 * The preheat form: URLs, one a line, each optionally followed by its
 * digest (sha256:…), sent to the scheduler, which has a seed peer fetch
 * them; each run's progress follows in the snapshots.
 */
import { useState } from 'preact/hooks';
import type { PreheatView } from '../src/scheduler/console/types.js';
import { bytes, clock } from './format.js';
import { parsePreheatLines } from './preheat-lines.js';

async function startPreheat(text: string): Promise<string> {
  const res = await fetch('/api/preheat', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ urls: parsePreheatLines(text) }) });
  const body = (await res.json()) as { id?: string; error?: { code: string; message: string } };
  if (!res.ok || body.id === undefined) throw new Error(body.error === undefined ? `HTTP ${res.status}` : `${body.error.code}: ${body.error.message}`);
  return body.id;
}

export function PreheatForm() {
  const [text, setText] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = (event: Event): void => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    startPreheat(text)
      .then(() => setText(''))
      .catch((err: unknown) => setError((err as Error).message))
      .finally(() => setBusy(false));
  };
  return (
    <form class="preheat" onSubmit={submit}>
      <label for="preheat-urls">URLs to preheat, one a line, each optionally followed by its digest</label>
      <textarea id="preheat-urls" name="urls" rows={3} placeholder="https://example.com/model.bin sha256:…" value={text} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} required />
      <button type="submit" disabled={busy}>
        Preheat
      </button>
      {error !== undefined && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

export function PreheatRuns({ runs }: { runs: PreheatView[] }) {
  if (runs.length === 0) return null;
  return (
    <div class="runs">
      {runs.map((r) => (
        <div key={r.id} class={`run state-${r.state}`} data-preheat={r.id} data-state={r.state}>
          <div>
            <strong>{r.id}</strong> started {clock(r.startedAt)}: <span class="state">{r.state}</span>
          </div>
          <ul>
            {r.tasks.map((t) => (
              <li key={t.taskId} data-state={t.state}>
                <span class={`tag ${t.state}`}>{t.state}</span> <span class="url">{t.url}</span>{' '}
                <span class="muted small">
                  {bytes(t.completedBytes)}
                  {t.contentLength !== undefined && ` of ${bytes(t.contentLength)}`}
                  {t.seedHostId !== '' && ` on ${t.seedHostId}`}
                </span>
                {t.error !== undefined && (
                  <div class="error">
                    {t.error.code}: {t.error.message}
                  </div>
                )}
              </li>
            ))}
            {r.more > 0 && <li class="muted">{r.more} more tasks</li>}
          </ul>
        </div>
      ))}
    </div>
  );
}
