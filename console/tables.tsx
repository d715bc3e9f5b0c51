/** The console's lists: hosts, tasks and back-to-source events. */
import type { HostView, SourceEventView, TaskView } from '../src/scheduler/console/types.js';
import { bytes, clock, percent, rate, shortId } from './format.js';

function Bar({ share, warn = false }: { share: number | undefined; warn?: boolean }) {
  const width = share === undefined ? 0 : Math.max(0, Math.min(1, share)) * 100;
  return (
    <span class={`bar${warn ? ' warn' : ''}`} title={percent(share)}>
      <span class="fill" style={{ width: `${width}%` }} />
      <span class="value">{percent(share)}</span>
    </span>
  );
}

export function HostsTable({ hosts, more }: { hosts: HostView[]; more: number }) {
  if (hosts.length === 0) return <p class="muted">No host has announced itself.</p>;
  // Hosts of one name (containers, one machine) are told apart by their IDs.
  const names = new Map<string, number>();
  for (const h of hosts) names.set(h.hostname, (names.get(h.hostname) ?? 0) + 1);
  return (
    <table class="hosts">
      <thead>
        <tr>
          <th>host</th>
          <th>address</th>
          <th>role</th>
          <th title="upload slots in use, of those it offers">load</th>
          <th title="the upload cap it announced">announced</th>
          <th title="the best rate one of its peers kept up: a lower bound on its link">measured link</th>
          <th>slow</th>
          <th>peers</th>
          <th>idc / location</th>
        </tr>
      </thead>
      <tbody>
        {hosts.map((h) => (
          <tr key={h.id} data-host={h.id} class={h.slow ? 'slow' : ''}>
            <td title={h.id}>{h.hostname === '' || (names.get(h.hostname) ?? 0) > 1 ? h.id : h.hostname}</td>
            <td class="mono">
              {h.ip}:{h.port}
            </td>
            <td>{h.seed ? <span class="tag seed">seed</span> : 'peer'}</td>
            <td>
              <Bar share={h.uploadSlots > 0 ? h.uploadLoad / h.uploadSlots : undefined} warn={h.uploadLoad >= h.uploadSlots} />
              <span class="muted small">
                {' '}
                {h.uploadLoad}/{h.uploadSlots}
              </span>
            </td>
            <td>{h.announcedRate > 0 ? rate(h.announcedRate) : 'no cap'}</td>
            <td>{rate(h.measuredRate)}</td>
            <td>{h.slow ? <span class="tag warn">slow</span> : 'no'}</td>
            <td>{h.peers}</td>
            <td class="muted">{[h.idc, h.location].filter((x) => x !== '').join(' / ') || '–'}</td>
          </tr>
        ))}
      </tbody>
      {more > 0 && <caption class="muted">{more} more hosts not listed</caption>}
    </table>
  );
}

function states(t: TaskView): string {
  return Object.entries(t.states)
    .map(([state, n]) => `${n} ${state}`)
    .join(', ');
}

export function TasksTable({ tasks, selected, onSelect, more }: { tasks: TaskView[]; selected: string | undefined; onSelect: (id: string) => void; more: number }) {
  if (tasks.length === 0) return <p class="muted">No task yet: the swarm is empty.</p>;
  return (
    <table class="tasks">
      <thead>
        <tr>
          <th>task</th>
          <th>size</th>
          <th title="pieces its peers hold, of the pieces all of them will hold">progress</th>
          <th>peers</th>
          <th title="copies of the content the origin sent (1: each byte once)">origin copies</th>
          <th title="peers sent to the origin">to source</th>
          <th>shape</th>
        </tr>
      </thead>
      <tbody>
        {tasks.map((t) => (
          <tr key={t.id} data-task={t.id} data-peers={t.peers} class={`${t.id === selected ? 'selected' : ''}${t.active ? ' active' : ''}`} onClick={() => onSelect(t.id)}>
            <td>
              <button type="button" class="link" onClick={() => onSelect(t.id)} title={t.id}>
                {shortId(t.id)}
              </button>
              <div class="url muted small">{t.url}</div>
            </td>
            <td>{bytes(t.size)}</td>
            <td>
              <Bar share={t.progress} />
            </td>
            <td title={states(t)}>
              <span class="peers">{t.peers}</span> <span class="muted small">{states(t)}</span>
            </td>
            <td class={t.originCopies !== undefined && t.originCopies > 1.2 ? 'warn' : ''}>{t.originCopies === undefined ? '?' : `×${t.originCopies.toFixed(2)}`}</td>
            <td>{t.backToSource}</td>
            <td>{t.stripes > 1 ? `split ×${t.stripes}` : 'chain'}</td>
          </tr>
        ))}
      </tbody>
      {more > 0 && <caption class="muted">{more} more tasks not listed</caption>}
    </table>
  );
}

export function EventsTable({ events }: { events: SourceEventView[] }) {
  if (events.length === 0) return <p class="muted">No peer has been sent to the origin.</p>;
  return (
    <table class="events">
      <thead>
        <tr>
          <th>time</th>
          <th>task</th>
          <th>host</th>
          <th>reason</th>
        </tr>
      </thead>
      <tbody>
        {events.map((e) => (
          <tr key={`${e.at} ${e.peerId}`} class={e.seed ? '' : 'fallback'}>
            <td class="mono">{clock(e.at)}</td>
            <td title={e.taskId}>
              <span class="mono">{shortId(e.taskId)}</span> <span class="muted small">{e.url ?? ''}</span>
            </td>
            <td title={e.peerId}>
              {e.hostId} {e.seed && <span class="tag seed">seed</span>}
            </td>
            <td>{e.reason}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
