/**
 * One run of the simulation: the real scheduler (src/scheduler: Swarm,
 * scoring, chain and split trees, slow links), several of them, on a
 * virtual clock, with simulated daemons on fluid links (./links.ts,
 * ./peer.ts). Daemons announce their host to every scheduler and register
 * each task on the first live one in the task's rendezvous order, as real
 * daemons do (src/daemon/scheduler-pool.ts); when that scheduler dies they
 * register again on the next with the pieces they hold.
 */
import { createHash } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { SchedulerConfigSchema } from '../../src/common/config/schema.js';
import { silentLogger } from '../../src/common/log.js';
import { rendezvousOrder } from '../../src/common/rendezvous.js';
import { HeldTaskSchema, RegisterPeerSchema, TaskSpecSchema, type HostCommand, type PeerResponse, type TaskSpec } from '../../src/gen/shoal/v1/scheduler_pb.js';
import { NO_EVENTS } from '../../src/scheduler/events.js';
import type { HostInfo } from '../../src/scheduler/model.js';
import { Swarm } from '../../src/scheduler/swarm.js';
import type { SchedulerTimers } from '../../src/scheduler/timers.js';
import { Rng } from '../chaos/rng.js';
import { SimClock } from './clock.js';
import { drawHosts, kumarRoss, type SimHost, type SimOptions } from './fleet.js';
import { allocate } from './links.js';
import { SimPeer } from './peer.js';

export interface SimResult {
  readonly peers: number;
  readonly completed: number;
  /** Not done when the run ended (failed, or still downloading at the limit). */
  readonly incomplete: number;
  /** Completion times (from joining), s. */
  readonly last: number;
  readonly median: number;
  readonly p99: number;
  readonly tMin: number;
  readonly ratio: number;
  readonly originCopies: number;
  readonly decisions: number;
  readonly p99DecisionMs: number;
  readonly maxDecisionMs: number;
  /** Wall time spent in the schedulers' code (their calls and timers), s. */
  readonly schedulerSeconds: number;
  readonly sentToSource: number;
  readonly simulated: number;
  readonly wallSeconds: number;
  /** SHA-256 of every parents' list the schedulers sent, in order: equal runs made equal decisions. */
  readonly decisionHash: string;
}

/** A daemon stops waiting for a piece and asks for other parents after this long (the daemon's starvationTimeout). */
const STARVATION_MS = 10_000;

interface SimScheduler {
  readonly name: string;
  readonly index: number;
  readonly swarm: Swarm;
  alive: boolean;
}

function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export function runSim(options: SimOptions): SimResult {
  const started = performance.now();
  const clock = new SimClock();
  const rng = new Rng(options.seed ^ 0x5eed);
  const trace = createHash('sha256');
  const pieceCount = Math.ceil(options.size / options.pieceSize);
  const shape = { pieceCount, pieceSize: options.pieceSize };
  const seedUpPerTask = options.seedRate / options.tasks;

  // ---- the schedulers, timed ----
  let busy = 0;
  let depth = 0;
  const timed = <T>(fn: () => T): T => {
    if (depth > 0) return fn();
    depth++;
    const t = performance.now();
    try {
      return fn();
    } finally {
      busy += performance.now() - t;
      depth--;
    }
  };
  const timers: SchedulerTimers = { after: (ms, fn) => clock.after(ms, () => timed(fn)), soon: (fn) => clock.soon(() => timed(fn)) };
  let decisions = new Float64Array(1 << 16);
  let decided = 0;
  let sentToSource = 0;
  const events = {
    ...NO_EVENTS,
    decided: (seconds: number): void => {
      if (decided === decisions.length) {
        const grown = new Float64Array(decisions.length * 2);
        grown.set(decisions);
        decisions = grown;
      }
      decisions[decided++] = seconds * 1000;
    },
    sentToSource: (): void => {
      sentToSource++;
    },
  };
  const settings = SchedulerConfigSchema.parse({});
  const schedulers: SimScheduler[] = Array.from({ length: options.schedulers }, (_, index) => ({
    name: `scheduler-${index}`,
    index,
    swarm: new Swarm(settings, { logger: silentLogger, now: () => clock.now(), events, timers }),
    alive: true,
  }));
  const taskIds = Array.from({ length: options.tasks }, (_, t) => `task-${t}`);
  const order = new Map(taskIds.map((id) => [id, rendezvousOrder(id, schedulers, (s) => s.name)]));
  const ownerOf = (taskId: string): SimScheduler | undefined => order.get(taskId)!.find((s) => s.alive);
  const specs = new Map<string, TaskSpec>(taskIds.map((taskId) => [taskId, create(TaskSpecSchema, { taskId, url: `http://origin.test/${taskId}` })]));

  // ---- the fleet ----
  const tMinOf = (rates: readonly { down: number; up: number }[]): number => {
    let worst = 0;
    for (let t = 0; t < options.tasks; t++) worst = Math.max(worst, kumarRoss(options.size, seedUpPerTask, rates.filter((_, i) => i % options.tasks === t)));
    return worst;
  };
  const hosts = drawHosts(options, (rates) => tMinOf(rates) * 1000);
  const tMin = tMinOf(hosts);
  const peers = new Map<string, SimPeer>();
  const fleet: SimPeer[] = [];
  const seeds = new Map<string, SimPeer>();
  const originPieces = new Map<string, number>(taskIds.map((id) => [id, 0]));

  const hostInfo = (id: string, seed: boolean, up: number): HostInfo => ({
    id,
    hostname: id,
    ip: id,
    port: 1,
    idc: '',
    location: '',
    seed,
    uploadSlots: seed ? 256 : 64,
    uploadLoad: 0,
    uploadRate: options.announce ? Math.round(up) : 0,
    identity: '',
  });
  const hostIdOf = (p: SimPeer): string => (p.host === undefined ? 'seed-0' : `h${p.host.index}`);
  const infos = new Map<string, HostInfo>();

  const onSeedCommand = (command: HostCommand): void => {
    if (command.command.case !== 'seedTask') return;
    const taskId = command.command.value.task?.taskId ?? '';
    if (!seeds.has(taskId) || seeds.get(taskId)!.state !== 'waiting') return;
    clock.after(1, () => register(seeds.get(taskId)!, false));
  };
  const announce = (id: string, to: SimScheduler, held: ReturnType<typeof heldTask>[] = []): void => {
    const info = infos.get(id)!;
    timed(() => to.swarm.announceHost({ ...info }, info.seed ? onSeedCommand : () => undefined, held));
  };
  const heldTask = (p: SimPeer) =>
    create(HeldTaskSchema, {
      taskId: p.taskId,
      peerId: p.id,
      metadata: { contentLength: BigInt(options.size), pieceSize: options.pieceSize, validator: 'v1' },
      pieces: [...Array(pieceCount).keys()],
      digests: new Uint8Array(32 * pieceCount),
      complete: true,
    });

  const swarmOf = (p: SimPeer): Swarm | undefined => {
    const s = schedulers[p.scheduler];
    return s?.alive === true && p.entry !== undefined ? s.swarm : undefined;
  };

  function register(p: SimPeer, reconnect: boolean): void {
    const s = ownerOf(p.taskId);
    if (s === undefined || !p.downloading) return;
    const held = [...Array(pieceCount).keys()].filter((n) => p.heldAt[n]! >= 0);
    const request = create(RegisterPeerSchema, {
      peerId: p.id,
      hostId: hostIdOf(p),
      task: specs.get(p.taskId)!,
      ...(held.length > 0 || p.state === 'source' ? { metadata: { contentLength: BigInt(options.size), pieceSize: options.pieceSize, validator: 'v1' } } : {}),
      pieces: held,
      digests: p.state === 'source' ? new Uint8Array(32 * held.length) : new Uint8Array(0),
      backToSource: p.state === 'source',
      reconnect,
    });
    p.scheduler = s.index;
    p.fresh = [];
    if (p.state === 'waiting') p.state = 'down';
    p.entry = timed(() => s.swarm.register(request, (response) => respond(p, s, response)));
  }

  function respond(p: SimPeer, s: SimScheduler, response: PeerResponse): void {
    if (p.scheduler !== s.index) return;
    const r = response.response;
    switch (r.case) {
      case 'parents': {
        trace.update(`${clock.now()} ${p.id}:${r.value.parents.map((x) => `${x.peerId}/${x.stripeMask}`).join(',')}\n`);
        if (p.state !== 'down') return;
        const list = r.value.parents.flatMap((parent) => {
          const peer = peers.get(parent.peerId);
          return peer === undefined ? [] : [{ peer, mask: parent.stripes > 1 ? parent.stripeMask : undefined }];
        });
        p.setParents(list, r.value.parents.reduce((k, parent) => Math.max(k, parent.stripes), 1));
        return;
      }
      case 'backToSource':
        if (!p.downloading) return;
        for (const edge of [...p.edges.values()]) p.dropEdge(edge);
        p.state = 'source';
        p.sentToSource = p.host !== undefined;
        clock.after(1, () => {
          const swarm = swarmOf(p);
          if (swarm !== undefined && p.entry !== undefined) timed(() => swarm.metadata(p.entry!, options.size, options.pieceSize, 'v1'));
        });
        return;
      case 'failed':
        p.state = 'failed';
        p.cutAll();
        return;
      default:
        return;
    }
  }

  function leave(p: SimPeer): void {
    if (p.state === 'gone') return;
    const wasDone = p.state === 'done';
    p.state = wasDone ? 'done' : 'gone';
    p.cutAll();
    for (const s of schedulers) if (s.alive) timed(() => s.swarm.leaveHost(hostIdOf(p)));
    if (!wasDone) p.state = 'gone';
    departed.add(p);
  }
  const departed = new Set<SimPeer>();

  // The seed host, one peer of it per task.
  infos.set('seed-0', hostInfo('seed-0', true, options.seedRate));
  for (const taskId of taskIds) {
    const seed = new SimPeer(`seed/${taskId}`, undefined, taskId, shape, { down: options.seedRate, up: seedUpPerTask });
    seeds.set(taskId, seed);
    peers.set(seed.id, seed);
  }
  for (const s of schedulers) {
    timed(() => void s.swarm.start());
    announce('seed-0', s);
  }
  for (const host of hosts) {
    const p = new SimPeer(`p${host.index}`, host, taskIds[host.task]!, shape, host);
    peers.set(p.id, p);
    fleet.push(p);
    infos.set(`h${host.index}`, hostInfo(`h${host.index}`, false, host.up));
    clock.at(host.joinAt, () => {
      p.joinedAt = clock.now();
      p.lastProgressAt = clock.now();
      for (const s of schedulers) if (s.alive) announce(`h${host.index}`, s);
      register(p, false);
    });
    if (host.leaveAt !== undefined) clock.at(host.leaveAt, () => p.downloading && leave(p));
  }

  // ---- a scheduler dies ----
  if (options.killAt !== undefined) {
    clock.at(options.killAt * tMin * 1000, () => {
      const dead = ownerOf(taskIds[0]!);
      if (dead === undefined) return;
      dead.alive = false;
      void dead.swarm.stop();
      for (const p of peers.values()) {
        if (p.scheduler !== dead.index) continue;
        // Each daemon finds its stream gone and registers on the next scheduler (its complete tasks: re-announced).
        const after = 50 + rng.next() * 200;
        clock.after(after, () => {
          const next = ownerOf(p.taskId);
          if (next === undefined) return;
          if (p.state === 'done') {
            p.scheduler = next.index;
            announce(hostIdOf(p), next, [heldTask(p)]);
            p.entry = next.swarm.tasks.get(p.taskId)?.peers.get(p.id);
          } else if (p.downloading) register(p, true);
        });
      }
    });
  }

  // ---- the fluid model, one step every tickMs ----
  let step = 0;
  const dt = options.tickMs / 1000;
  const lastJoin = Math.max(0, ...hosts.map((h) => h.joinAt));
  let finished = false;
  const tick = (): void => {
    step++;
    const now = clock.now();
    const serving: SimPeer[] = [];
    const fetching: SimPeer[] = [];
    for (const p of peers.values()) {
      if (p.state === 'down') fetching.push(p);
      if (p.state === 'down' || p.state === 'source' || p.state === 'done') serving.push(p);
    }
    for (const p of fetching) for (const edge of p.edges.values()) if (edge.piece < 0) p.pick(edge, step);
    for (const p of serving) p.collectFlows();
    allocate(
      serving.map((p) => p.sender),
      fetching.map((p) => p.receiver),
      (f) => f.child.receiver,
    );
    for (const p of fetching) {
      for (const edge of [...p.receiver.flows]) {
        let budget = edge.rate * dt;
        while (edge.piece >= 0) {
          if (budget < edge.remaining) {
            edge.remaining -= budget;
            break;
          }
          budget -= edge.remaining;
          p.store(edge.piece, step);
          edge.piece = -1;
          if (!p.pick(edge, step)) break;
        }
      }
    }
    for (const p of serving) {
      if (p.state !== 'source') continue;
      let budget = Math.min(p.down, options.seedRate) * dt;
      while (p.held < pieceCount) {
        if (p.originPiece < 0) {
          while (p.low < pieceCount && p.heldAt[p.low]! >= 0) p.low++;
          p.originPiece = p.low;
          p.originLeft = options.pieceSize;
        }
        if (budget < p.originLeft) {
          p.originLeft -= budget;
          break;
        }
        budget -= p.originLeft;
        originPieces.set(p.taskId, originPieces.get(p.taskId)! + 1);
        p.store(p.originPiece, step);
        p.originPiece = -1;
      }
    }
    // Reports, completions, starvation.
    for (const p of serving) {
      const swarm = swarmOf(p);
      if (p.fresh.length > 0) {
        const fresh = p.fresh;
        p.fresh = [];
        p.lastProgressAt = now;
        if (swarm !== undefined) timed(() => swarm.piecesFinished(p.entry!, fresh, p.state === 'source' ? new Uint8Array(32 * fresh.length) : new Uint8Array(0)));
      }
      if (p.held === pieceCount && p.state !== 'done') {
        p.state = 'done';
        p.doneAt = now;
        for (const edge of [...p.edges.values()]) p.dropEdge(edge);
        if (swarm !== undefined) timed(() => swarm.finished(p.entry!));
        if (p.host?.leavesWhenDone === true) clock.after(1000, () => leave(p));
      } else if (p.state === 'down' && now - p.lastProgressAt > STARVATION_MS) {
        p.lastProgressAt = now;
        if (swarm !== undefined) timed(() => swarm.reschedule(p.entry!));
      }
    }
    const pending = now <= lastJoin || fleet.some((p) => p.downloading);
    if (!pending || now > options.limit * tMin * 1000) {
      finished = true;
      return;
    }
    clock.after(options.tickMs, tick);
  };
  clock.at(0, tick);
  clock.run(Infinity, () => finished);
  for (const s of schedulers) void s.swarm.stop();

  // ---- results ----
  const times = fleet.filter((p) => p.doneAt !== undefined).map((p) => (p.doneAt! - p.joinedAt) / 1000);
  times.sort((a, b) => a - b);
  const counted = fleet.filter((p) => !(departed.has(p) && p.doneAt === undefined));
  const incomplete = counted.length - times.length;
  const last = incomplete > 0 ? Infinity : (times[times.length - 1] ?? NaN);
  const sortedDecisions = decisions.slice(0, decided).sort();
  let origin = 0;
  for (const n of originPieces.values()) origin += n;
  return {
    peers: options.peers,
    completed: times.length,
    incomplete,
    last,
    median: quantile(times, 0.5),
    p99: quantile(times, 0.99),
    tMin,
    ratio: last / tMin,
    originCopies: origin / (pieceCount * options.tasks),
    decisions: decided,
    p99DecisionMs: quantile(sortedDecisions, 0.99),
    maxDecisionMs: sortedDecisions[sortedDecisions.length - 1] ?? 0,
    schedulerSeconds: busy / 1000,
    sentToSource,
    simulated: clock.now() / 1000,
    wallSeconds: (performance.now() - started) / 1000,
    decisionHash: trace.digest('hex').slice(0, 16),
  };
}

export type { SimHost };
