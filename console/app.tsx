/**
 * The console: one stream of snapshots (server-sent events from
 * /api/events, for the task shown), drawn as the "is P2P working" line, the
 * tasks with the chosen one's swarm graph, the hosts, the back-to-source
 * events and the preheat form.
 */
import { useEffect, useState } from 'preact/hooks';
import type { Snapshot } from '../src/scheduler/console/types.js';
import { SwarmGraph } from './graph.js';
import { PreheatForm, PreheatRuns } from './preheat.js';
import { EventsTable, HostsTable, TasksTable } from './tables.js';
import { clock, shortId } from './format.js';

type Link = 'connecting' | 'live' | 'lost' | 'logged out';

function taskFromHash(): string | undefined {
  const m = /^#task=([a-f0-9]{64})$/.exec(location.hash);
  return m?.[1];
}

/** Snapshots of the swarm, with the graph of `task`, as they come. */
function useSnapshots(task: string | undefined): { snapshot: Snapshot | undefined; link: Link } {
  const [snapshot, setSnapshot] = useState<Snapshot | undefined>();
  const [link, setLink] = useState<Link>('connecting');
  useEffect(() => {
    const source = new EventSource(`/api/events${task === undefined ? '' : `?task=${task}`}`);
    source.addEventListener('snapshot', (e) => {
      setSnapshot(JSON.parse((e as MessageEvent<string>).data) as Snapshot);
      setLink('live');
    });
    source.onerror = () => {
      // Closed for good (a 401: the session ended) or retrying by itself.
      setLink(source.readyState === EventSource.CLOSED ? 'logged out' : 'lost');
    };
    return () => source.close();
  }, [task]);
  return { snapshot, link };
}

export function App() {
  const [chosen, setChosen] = useState<string | undefined>(taskFromHash());
  const [firstTask, setFirstTask] = useState<string | undefined>();
  const shown = chosen ?? firstTask;
  const { snapshot, link } = useSnapshots(shown);
  useEffect(() => {
    if (chosen === undefined && firstTask === undefined && snapshot !== undefined && snapshot.tasks.length > 0) setFirstTask(snapshot.tasks[0]!.id);
  }, [snapshot, chosen, firstTask]);
  useEffect(() => {
    const onHash = (): void => setChosen(taskFromHash());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  const select = (id: string): void => {
    location.hash = `task=${id}`;
    setChosen(id);
  };
  const task = snapshot?.tasks.find((t) => t.id === shown);
  return (
    <>
      <header>
        <h1>Shoal console</h1>
        <span class={`link-state ${link.replace(' ', '-')}`} data-link={link}>
          {link}
          {snapshot !== undefined && ` · ${clock(snapshot.at)}`}
        </span>
        <form method="post" action="/logout" class="logout">
          <button type="submit">Log out</button>
        </form>
      </header>
      {link === 'logged out' && (
        <p class="error" role="alert">
          The session ended: <a href="/">log in again</a>.
        </p>
      )}
      {snapshot === undefined ? (
        <p class="muted">Waiting for the first snapshot…</p>
      ) : (
        <>
          <p class={`verdict ${snapshot.recent.verdict}`} data-testid="verdict" data-verdict={snapshot.recent.verdict}>
            {snapshot.recent.line}
          </p>
          <p class="muted small">
            {snapshot.totals.hosts} hosts, {snapshot.totals.tasks} tasks
          </p>
          <section>
            <h2>Tasks</h2>
            <TasksTable tasks={snapshot.tasks} selected={shown} onSelect={select} more={snapshot.totals.moreTasks} />
          </section>
          <section>
            <h2>
              Swarm{task === undefined ? '' : ` of ${shortId(task.id)}`} <span class="muted small">{task?.url}</span>
            </h2>
            {snapshot.graph === undefined ? <p class="muted">{shown === undefined ? 'Choose a task above.' : 'The scheduler no longer knows this task.'}</p> : <SwarmGraph graph={snapshot.graph} />}
          </section>
          <section>
            <h2>Hosts</h2>
            <HostsTable hosts={snapshot.hosts} more={snapshot.totals.moreHosts} />
          </section>
          <section>
            <h2>Back to source</h2>
            <EventsTable events={snapshot.events} />
          </section>
          <section>
            <h2>Preheat</h2>
            <PreheatForm />
            <PreheatRuns runs={snapshot.preheats} />
          </section>
        </>
      )}
    </>
  );
}
