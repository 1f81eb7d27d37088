import type { Envelope } from "../../lib/events/index.ts";
import { windowsFor } from "../../lib/windows/spec.ts";
import type { AnyView } from "../../lib/windows/views.ts";

/**
 * The open windows of one input partition, for every view. Pure and synchronous: the job feeds it
 * events and watermarks, and takes the changed rows at each checkpoint. Only windows that are not
 * final live here; a final window is written once more (final = true) and then freed.
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

const rowKey = (view: string, key: string, start: number) => `${view}\u0000${key}\u0000${start}`;

/** When a window can no longer change: time windows at their end; sessions a gap after their last event, or at it once closed. */
function closesAt(view: AnyView, row: WindowRow): number {
  if (view.window.kind === "time") return row.end;
  const closed = (row.acc as { closed?: boolean }).closed === true;
  return closed ? row.end : row.end + view.window.gapMs;
}

export class PartitionWindows {
  private readonly rows = new Map<string, WindowRow>();
  /** Session starts per view and key, so a session lookup does not scan every row. */
  private readonly sessionStarts = new Map<string, Set<number>>();
  private readonly dirty = new Set<string>();
  private deleted: RowId[] = [];

  constructor(
    readonly partition: number,
    private readonly views: readonly AnyView[],
  ) {}

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

  /** Open windows reloaded from storage when this worker takes the partition over. */
  load(rows: WindowRow[]) {
    const kinds = new Map(this.views.map((v) => [v.name, v.window.kind]));
    for (const row of rows) this.put(row, kinds.get(row.view) === "session");
  }

  size(): number {
    return this.rows.size;
  }

  /** Applies one event to every view it feeds; returns the views for which it came too late. */
  apply(event: Envelope, watermark: number): string[] {
    const late: string[] = [];
    for (const view of this.views) {
      if (!view.accepts(event)) continue;
      const key = view.keyOf(event);
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

  private applySession(view: AnyView, key: string, event: Envelope, watermark: number): boolean {
    if (view.window.kind !== "session") return false;
    const gap = view.window.gapMs;
    const t = event.event_time;
    const starts = this.sessionStarts.get(`${view.name}\u0000${key}`) ?? new Set<number>();
    const sessions = [...starts].flatMap((start) => this.rows.get(rowKey(view.name, key, start)) ?? []);
    const touching = sessions.filter((s) => {
      const closed = (s.acc as { closed?: boolean }).closed === true;
      return t >= s.start - gap && (closed ? t <= s.end : t <= s.end + gap);
    });
    const wouldClose = touching.length > 0 ? Math.max(...touching.map((s) => closesAt(view, s))) : t + gap;
    if (wouldClose <= watermark) return true;
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

  /** Marks every window the watermark has passed as final. */
  finalize(watermark: number) {
    const byName = new Map(this.views.map((v) => [v.name, v]));
    for (const [id, row] of this.rows) {
      const view = byName.get(row.view);
      if (!row.final && view && closesAt(view, row) <= watermark) {
        row.final = true;
        this.dirty.add(id);
      }
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
