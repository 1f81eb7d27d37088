import type { Envelope } from "../../lib/events/index.ts";
import { windowsFor } from "../../lib/windows/spec.ts";
import type { AnyView } from "../../lib/windows/views.ts";

/**
 * The open windows of one input partition, for every view. Pure and synchronous: the job feeds it
 * events and watermarks, and takes the changed rows at each checkpoint. Only windows that are not
 * final live here; a final window is written once more (final = true) and then freed.
 *
 * Watermarks are per event type (see watermark.ts): a view's windows close at the minimum of the
 * watermarks of the types it reads, and an event is late for a view when it falls in a window of it
 * that this watermark has closed.
 *
 * Sessions are closed eagerly: before an event is applied to a session view, every session of its key
 * that the watermark has passed (a gap after its last event, or its end once a session_end closed it)
 * becomes final. An event at t is late for a session view when the session it would start alone has
 * closed (t + gap ≤ watermark), or when it would extend or bridge into a final session (t within a gap
 * before its start, or not after its reach: its end, plus a gap unless a session_end closed it). Final
 * sessions are remembered (start and reach) until the watermark is a gap past their reach: any event
 * reaching them is late by the first rule from then on. So what the engine holds is a pure function of
 * the sequence of (event, watermark) pairs it was given: checkpoints (`finalize`, `changes`) only decide
 * when rows are written, never what they hold; and the sessions equal those of the events not late,
 * split where the silence exceeds the gap or after a session_end.
 */
export interface WindowRow {
  view: string;
  key: string;
  partition: number;
  /** Time windows: the window's bounds. Sessions: first and last event time. */
  start: number;
  end: number;
  final: boolean;
  acc: unknown;
}

export interface RowId {
  view: string;
  key: string;
  start: number;
  partition: number;
}

/** The watermark of each event type in the partition; a number stands for every type. */
export type Watermarks = number | ((type: string) => number);

/** A session that has become final: only what an event needs to know whether it would touch it. */
interface ClosedSession {
  start: number;
  /** The latest event time that would still extend it: `closesAt`. */
  reach: number;
}

const rowKey = (view: string, key: string, start: number) => `${view}\u0000${key}\u0000${start}`;

/** When a window can no longer change: time windows at their end; sessions a gap after their last event, or at it once closed. */
function closesAt(view: AnyView, row: Pick<WindowRow, "end" | "acc">): number {
  if (view.window.kind === "time") return row.end;
  const closed = (row.acc as { closed?: boolean }).closed === true;
  return closed ? row.end : row.end + view.window.gapMs;
}

/** A view's watermark: the slowest of the types it reads. */
function watermarkOfView(view: AnyView, watermarks: Watermarks): number {
  return typeof watermarks === "number" ? watermarks : Math.min(...view.sources.map((type) => watermarks(type)));
}

export class PartitionWindows {
  private readonly rows = new Map<string, WindowRow>();
  /** Session starts per view and key, so a session lookup does not scan every row (final rows too, until freed). */
  private readonly sessionStarts = new Map<string, Set<number>>();
  /** Sessions that have become final, by view and key, while an event could still reach them. */
  private readonly closedSessions = new Map<string, Map<string, ClosedSession[]>>();
  private readonly byName: ReadonlyMap<string, AnyView>;
  private readonly dirty = new Set<string>();
  private deleted: RowId[] = [];

  constructor(
    readonly partition: number,
    private readonly views: readonly AnyView[],
  ) {
    for (const view of views) if (view.sources.length === 0) throw new RangeError(`view ${view.name} reads no event type: its windows would have no watermark`);
    this.byName = new Map(views.map((v) => [v.name, v]));
  }

  private put(row: WindowRow, isSession: boolean) {
    this.rows.set(rowKey(row.view, row.key, row.start), row);
    if (!isSession) return;
    const group = `${row.view}\u0000${row.key}`;
    const starts = this.sessionStarts.get(group) ?? new Set<number>();
    starts.add(row.start);
    this.sessionStarts.set(group, starts);
  }

  private remove(view: string, key: string, start: number) {
    this.rows.delete(rowKey(view, key, start));
    const group = `${view}\u0000${key}`;
    const starts = this.sessionStarts.get(group);
    starts?.delete(start);
    if (starts?.size === 0) this.sessionStarts.delete(group);
  }

  /**
   * Remembers a final session, keeping its key's list sorted by reach. Sessions close as the watermark passes
   * their reach, so almost every one goes at the end. In place: a key active for the whole gap holds hundreds
   * of closed sessions (thousands where session_end events close them often), and copying them was quadratic.
   */
  private remember(view: AnyView, row: Pick<WindowRow, "key" | "start" | "end" | "acc">) {
    const byKey = this.closedSessions.get(view.name) ?? new Map<string, ClosedSession[]>();
    const session = { start: row.start, reach: closesAt(view, row) };
    const closed = byKey.get(row.key);
    if (!closed) byKey.set(row.key, [session]);
    else {
      let at = closed.length;
      while (at > 0 && (closed[at - 1] as ClosedSession).reach > session.reach) at--;
      closed.splice(at, 0, session);
    }
    this.closedSessions.set(view.name, byKey);
  }

  /** Marks a row final (written once more, then freed); a session is remembered as closed. */
  private close(view: AnyView, id: string, row: WindowRow) {
    row.final = true;
    this.dirty.add(id);
    if (view.window.kind === "session") this.remember(view, row);
  }

  /**
   * Reloads the partition's state when this worker takes it over: its open windows, and the final
   * sessions an event could still reach (so a restart judges events as an uninterrupted run would).
   */
  load(rows: WindowRow[]) {
    // Final sessions in order of reach, as `remember` keeps them (appending each is then constant time).
    const finals: { view: AnyView; row: WindowRow; reach: number }[] = [];
    for (const row of rows) {
      const view = this.byName.get(row.view);
      if (!view) continue;
      const isSession = view.window.kind === "session";
      if (!row.final) this.put(row, isSession);
      else if (isSession) finals.push({ view, row, reach: closesAt(view, row) });
    }
    for (const { view, row } of finals.sort((a, b) => a.reach - b.reach)) this.remember(view, row);
  }

  size(): number {
    return this.rows.size;
  }

  /**
   * Applies one event to every view it feeds, each judged by its own watermark (the slowest of the types
   * the view reads); returns the views for which it came too late.
   */
  apply(event: Envelope, watermarks: Watermarks): string[] {
    const late: string[] = [];
    for (const view of this.views) {
      if (!view.accepts(event)) continue;
      const key = view.keyOf(event);
      const watermark = watermarkOfView(view, watermarks);
      const wasLate = view.window.kind === "time" ? this.applyTime(view, key, event, watermark) : this.applySession(view, key, event, watermark);
      if (wasLate) late.push(view.name);
    }
    return late;
  }

  private applyTime(view: AnyView, key: string, event: Envelope, watermark: number): boolean {
    if (view.window.kind !== "time") return false;
    let late = false;
    for (const window of windowsFor(view.window, event.event_time)) {
      if (window.end <= watermark) {
        late = true;
        continue;
      }
      const id = rowKey(view.name, key, window.start);
      const row = this.rows.get(id) ?? { view: view.name, key, partition: this.partition, start: window.start, end: window.end, final: false, acc: view.init() };
      row.acc = view.add(row.acc, event);
      this.put(row, false);
      this.dirty.add(id);
    }
    return late;
  }

  /**
   * Whether an event at `t` would extend or bridge into a final session of its key. Only sessions reaching
   * `t` or later can: in a list sorted by reach, the last few for a live event, so this scans from the end.
   */
  private touchesClosed(view: AnyView, key: string, t: number): boolean {
    if (view.window.kind !== "session") return false;
    const gap = view.window.gapMs;
    const closed = this.closedSessions.get(view.name)?.get(key);
    if (!closed) return false;
    for (let i = closed.length - 1; i >= 0; i--) {
      const session = closed[i] as ClosedSession;
      if (session.reach < t) return false;
      if (t >= session.start - gap) return true;
    }
    return false;
  }

  /**
   * Forgets the final sessions of a key no event can reach any more: an event at or before `reach` is behind
   * watermark − gap once watermark ≥ reach + gap, late by itself. They lead the list, sorted by reach.
   */
  private forgetUnreachable(view: AnyView, byKey: Map<string, ClosedSession[]>, key: string, watermark: number) {
    if (view.window.kind !== "session") return;
    const gap = view.window.gapMs;
    const closed = byKey.get(key) ?? [];
    let gone = 0;
    while (gone < closed.length && (closed[gone] as ClosedSession).reach + gap <= watermark) gone++;
    if (gone === closed.length) byKey.delete(key);
    else if (gone > 0) closed.splice(0, gone);
  }

  private applySession(view: AnyView, key: string, event: Envelope, watermark: number): boolean {
    if (view.window.kind !== "session") return false;
    const gap = view.window.gapMs;
    const t = event.event_time;
    const starts = this.sessionStarts.get(`${view.name}\u0000${key}`) ?? new Set<number>();
    const open: WindowRow[] = [];
    for (const start of [...starts]) {
      const id = rowKey(view.name, key, start);
      const row = this.rows.get(id);
      if (!row || row.final) continue;
      // The watermark has passed this session: it is over before this event is applied, whenever the next checkpoint is.
      if (closesAt(view, row) <= watermark) this.close(view, id, row);
      else open.push(row);
    }
    // Late: the session the event would start alone has closed (then it may reach final sessions this engine no
    // longer remembers), or it would extend or bridge into a session that is final.
    if (t + gap <= watermark) return true;
    if (this.touchesClosed(view, key, t)) return true;
    // Every open session left closes after the watermark: merging into them closes after it too.
    const touching = open.filter((s) => t >= s.start - gap && t <= closesAt(view, s));
    let acc = view.add(view.init(), event);
    for (const session of touching) {
      acc = view.merge(session.acc, acc);
      this.remove(view.name, key, session.start);
      this.dirty.delete(rowKey(view.name, key, session.start));
      this.deleted.push({ view: view.name, key, start: session.start, partition: this.partition });
    }
    const { first, last } = acc as { first: number; last: number };
    const id = rowKey(view.name, key, first);
    this.put({ view: view.name, key, partition: this.partition, start: first, end: last, final: false, acc }, true);
    this.dirty.add(id);
    // A row deleted and written again under the same start is an update, not a delete.
    this.deleted = this.deleted.filter((d) => !(d.view === view.name && d.key === key && d.start === first));
    return false;
  }

  /** Marks every window its view's watermark has passed as final, and forgets closed sessions no event can reach any more. */
  finalize(watermarks: Watermarks) {
    const marks = new Map(this.views.map((v) => [v.name, watermarkOfView(v, watermarks)]));
    for (const [id, row] of this.rows) {
      const view = this.byName.get(row.view);
      const watermark = marks.get(row.view);
      if (!row.final && view && watermark !== undefined && closesAt(view, row) <= watermark) this.close(view, id, row);
    }
    for (const [name, byKey] of [...this.closedSessions]) {
      const view = this.byName.get(name);
      const watermark = marks.get(name);
      if (view && watermark !== undefined) for (const key of [...byKey.keys()]) this.forgetUnreachable(view, byKey, key, watermark);
      if (byKey.size === 0) this.closedSessions.delete(name);
    }
  }

  /** Rows to write and to delete since the last call; `committed()` then frees the final ones. */
  changes(): { upserts: WindowRow[]; deletes: RowId[]; committed: () => void } {
    const ids = [...this.dirty];
    const upserts = ids.flatMap((id) => {
      const row = this.rows.get(id);
      return row ? [{ ...row }] : [];
    });
    const deletes = this.deleted;
    return {
      upserts,
      deletes,
      committed: () => {
        for (const id of ids) {
          this.dirty.delete(id);
          const row = this.rows.get(id);
          if (row?.final) this.remove(row.view, row.key, row.start);
        }
        this.deleted = this.deleted.filter((d) => !deletes.includes(d));
      },
    };
  }
}
