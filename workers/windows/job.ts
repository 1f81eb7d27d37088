import type { Bus, OutgoingRecord, PartitionOffset, TopicPartition } from "../../lib/bus/types.ts";
import type { Sql, Tx } from "../../lib/db/index.ts";
import type { Logger } from "../../lib/log.ts";
import type { Topics } from "../../lib/topics.ts";
import { type AnyView, DEFAULT_LATENESS_MS, WINDOWS_JOB } from "../../lib/windows/views.ts";
import { lateEvents, windowOpen, windowsFinalised } from "../../lib/metrics.ts";
import { type ChainBatch, enrichedValue, sourceHeaders } from "../chain/types.ts";
import type { StreamJob } from "../runner.ts";
import { PartitionWindows, type RowId, type WindowRow } from "./engine.ts";
import { WatermarkTracker, type WatermarkSnapshot } from "./watermark.ts";

export interface WindowsJobOptions {
  bus: Bus;
  sql: Sql;
  topics: Topics;
  logger: Logger;
  views: readonly AnyView[];
  latenessMs?: number;
  idleTimeoutMs?: number;
  now?: () => number;
}

export interface WindowsStats {
  late_events: number;
  replays_dropped: number;
  open_windows: number;
  watermark: number | null;
}

const iso = (ms: number) => new Date(ms).toISOString();

async function upsertRows(tx: Tx, rows: WindowRow[]) {
  for (let i = 0; i < rows.length; i += 1_000) {
    const slice = rows.slice(i, i + 1_000);
    await tx`
      -- final and state travel as text: the driver's boolean[] and jsonb[] parameters do not round-trip.
      insert into aggregates (view, key, window_start, partition, window_end, final, state, updated_at)
      select view, key, window_start, partition, window_end, final::boolean, state::jsonb, now()
      from unnest(${slice.map((r) => r.view)}::text[], ${slice.map((r) => r.key)}::text[], ${slice.map((r) => iso(r.start))}::timestamptz[],
                  ${slice.map((r) => r.partition)}::int[], ${slice.map((r) => iso(r.end))}::timestamptz[], ${slice.map((r) => String(r.final))}::text[],
                  ${slice.map((r) => JSON.stringify(r.acc))}::text[])
        as incoming(view, key, window_start, partition, window_end, final, state)
      on conflict (view, window_start, key, partition)
        do update set window_end = excluded.window_end, final = excluded.final, state = excluded.state, updated_at = excluded.updated_at`;
  }
}

async function deleteRows(tx: Tx, rows: RowId[]) {
  if (rows.length === 0) return;
  await tx`
    delete from aggregates a using unnest(${rows.map((r) => r.view)}::text[], ${rows.map((r) => r.key)}::text[], ${rows.map((r) => iso(r.start))}::timestamptz[], ${rows.map((r) => r.partition)}::int[])
      as gone(view, key, window_start, partition)
    where a.view = gone.view and a.key = gone.key and a.window_start = gone.window_start and a.partition = gone.partition`;
}

/** Why a partition is held (not idle): input it has yet to read. */
const UNREAD = "unread";

/** A watermark as stored: whole milliseconds, null while there is none. */
const stored = (watermark: number) => (Number.isFinite(watermark) ? Math.floor(watermark) : null);

/** window_progress.type_watermarks as read back: only finite numbers count. */
function typeWatermarks(value: unknown): Record<string, number> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return {};
  return Object.fromEntries(Object.entries(value).filter((entry): entry is [string, number] => typeof entry[1] === "number" && Number.isFinite(entry[1])));
}

/**
 * An operator of the chain (events.raw, decoded and enriched once per worker) → window aggregates in
 * Postgres. Each input partition has its own window state (PartitionWindows), reloaded from its open
 * rows by whichever worker owns the partition. Rows, the watermarks (per partition and event type, see
 * watermark.ts) and the input positions commit in one transaction; events behind the watermark go to
 * events.late and are counted, never applied.
 */
export function createWindowsJob(options: WindowsJobOptions): StreamJob & { stats: () => WindowsStats } {
  const input = options.topics.raw;
  const tracker = new WatermarkTracker({ latenessMs: options.latenessMs ?? DEFAULT_LATENESS_MS, idleTimeoutMs: options.idleTimeoutMs ?? 30_000, now: options.now });
  /** The event types some view reads: the only ones with a watermark. */
  const tracked = new Set(options.views.flatMap((v) => v.sources));
  const sessionViews = options.views.flatMap((v) => (v.window.kind === "session" ? [{ name: v.name, gapMs: v.window.gapMs }] : []));
  const partitions = new Map<number, PartitionWindows>();
  const sourceOffsets = new Map<number, number>();
  const lateCounts = new Map<number, number>();
  /** Next offset to read per owned partition of events.raw. */
  const delivered = new Map<number, number>();
  /** Per owned partition, the end offset of events.raw last seen (at assignment, then by the unread check). */
  const seenEnds = new Map<number, number>();
  let lateOut: OutgoingRecord[] = [];
  let processed = 0;
  let replaysDropped = 0;
  /** Each partition's watermarks as last committed: a checkpoint is due when one has moved. */
  const committedWatermarks = new Map<number, WatermarkSnapshot>();

  /**
   * A partition is only idle when its devices are, not while records wait for it in events.raw
   * (rebalancing, catching up on a backlog): it is held while what it delivered is behind the end offset
   * of events.raw, checked once a second, and released as soon as it delivers up to the end last seen.
   * With a steady flow a partition is held for a few milliseconds after each check: time held does not
   * count as silence, so a type silent in a busy partition still goes idle.
   */
  const checkUnread = async () => {
    if (partitions.size === 0) return;
    const ends = await options.bus.endOffsets(input);
    for (const [p] of partitions) {
      const end = ends.find((e) => e.partition === p)?.offset ?? 0;
      seenEnds.set(p, end);
      if ((delivered.get(p) ?? 0) < end) tracker.hold(p, UNREAD);
      else tracker.release(p, UNREAD);
    }
  };
  const unreadTimer = setInterval(() => checkUnread().catch((error: unknown) => options.logger.warn("unread check failed; partitions stay as they were", { error })), 1_000);

  const windowsOf = (partition: number) => {
    let engine = partitions.get(partition);
    if (!engine) {
      engine = new PartitionWindows(partition, options.views);
      partitions.set(partition, engine);
    }
    return engine;
  };
  const forget = (gone: number[]) => {
    for (const partition of gone) {
      partitions.delete(partition);
      sourceOffsets.delete(partition);
      lateCounts.delete(partition);
      committedWatermarks.delete(partition);
      seenEnds.delete(partition);
      delivered.delete(partition);
    }
    tracker.revoke(gone);
  };
  const openWindows = () => [...partitions.values()].reduce((sum, p) => sum + p.size(), 0);

  return {
    name: WINDOWS_JOB,
    input,

    async assigned(assignment: TopicPartition[], sql: Sql, starts: PartitionOffset[]) {
      const fresh = assignment.map((a) => a.partition).filter((p) => !partitions.has(p));
      if (fresh.length === 0) return;
      type Row = { view: string; key: string; partition: number; window_start: Date; window_end: Date; final: boolean; state: unknown };
      const open = await sql<Row[]>`
        select view, key, partition, window_start, window_end, final, state from aggregates where partition = any(${fresh}) and not final`;
      const progress = await sql<{ partition: number; watermark: number | null; type_watermarks: unknown; source_offset: number; late_events: number }[]>`
        select partition, watermark, type_watermarks, source_offset, late_events from window_progress where job = ${WINDOWS_JOB} and partition = any(${fresh})`;
      // Final sessions an event could still reach (the engine forgets them once watermark ≥ end + 2 gaps).
      const horizon = Math.max(0, ...sessionViews.map((v) => 2 * v.gapMs));
      const cutoffs = new Map(progress.flatMap((r) => (r.watermark === null ? [] : [[r.partition, r.watermark - horizon] as const])));
      const oldest = Math.min(...cutoffs.values());
      const closed =
        sessionViews.length === 0 || cutoffs.size === 0
          ? []
          : (
              await sql<Row[]>`
                select view, key, partition, window_start, window_end, final, state from aggregates
                where partition = any(${[...cutoffs.keys()]}) and final and view = any(${sessionViews.map((v) => v.name)}) and window_end > ${new Date(oldest)}`
            ).filter((r) => r.window_end.getTime() > (cutoffs.get(r.partition) ?? Number.POSITIVE_INFINITY));
      const rows = [...open, ...closed];
      for (const p of fresh) {
        windowsOf(p).load(rows.filter((r) => r.partition === p).map((r) => ({ view: r.view, key: r.key, partition: p, start: r.window_start.getTime(), end: r.window_end.getTime(), final: r.final, acc: r.state })));
        const saved = progress.find((r) => r.partition === p);
        sourceOffsets.set(p, saved?.source_offset ?? -1);
        lateCounts.set(p, saved?.late_events ?? 0);
        if (saved) {
          tracker.restore(p, saved.watermark, typeWatermarks(saved.type_watermarks));
          committedWatermarks.set(p, tracker.snapshot(p));
        }
      }
      tracker.assign(fresh);
      // A backlog may take longer than the idle timeout to start arriving (rebalance, first fetch): until it
      // is read, the partition must not be idle, or the partitions that ran ahead would make it late.
      const ends = await options.bus.endOffsets(input);
      const catchingUp: number[] = [];
      for (const p of fresh) {
        const start = starts.find((s) => s.partition === p)?.offset ?? 0;
        const end = ends.find((e) => e.partition === p)?.offset ?? 0;
        delivered.set(p, start);
        seenEnds.set(p, end);
        if (start < end) {
          tracker.hold(p, UNREAD);
          catchingUp.push(p);
        }
      }
      options.logger.info("window state loaded", { partitions: fresh, open_windows: open.length, closed_sessions: closed.length, catching_up: catchingUp });
    },

    reset() {
      forget([...partitions.keys()]);
      lateOut = [];
      processed = 0;
    },

    revoked(revoked: TopicPartition[]) {
      forget(revoked.map((r) => r.partition));
    },

    process(batch: ChainBatch) {
      const partition = batch.partition;
      const engine = windowsOf(partition);
      const watermarks = (type: string) => tracker.watermarkOf(partition, type);
      for (const record of batch.records) {
        // window_progress.source_offset is the last events.raw offset applied (as it was when this job read
        // events.enriched, whose records named their events.raw position): at or below it, a record is a replay.
        if (record.offset <= (sourceOffsets.get(partition) ?? -1)) {
          replaysDropped++;
          continue;
        }
        sourceOffsets.set(partition, record.offset);
        const event = record.event;
        // A repeat the chain found, or bytes that are no envelope (the runner dead-letters those).
        if (!event) continue;
        processed++;
        if (!tracked.has(event.type)) continue;
        const late = engine.apply(event, watermarks);
        if (late.length > 0) {
          lateCounts.set(partition, (lateCounts.get(partition) ?? 0) + 1);
          // The record's own headers (its events.raw position) go along, so a consumer can drop the copy a
          // retried checkpoint produces again.
          lateOut.push({ key: record.key, value: enrichedValue(record), timestamp: event.event_time, headers: { ...sourceHeaders(record), "devpipe-late-views": late.join(",") } });
        }
        tracker.observe(partition, event.type, event.event_time);
      }
      const last = batch.records[batch.records.length - 1];
      if (last) delivered.set(partition, last.offset + 1);
      if (last && last.offset + 1 >= (seenEnds.get(partition) ?? 0)) tracker.release(partition, UNREAD);
    },

    /** Records to commit, plus one when a watermark has moved while the partition has open windows (they may close). */
    pending: () => {
      // Readers take the slowest partition's watermark as the merged windows' one, so even a partition with
      // no open window publishes its progress (by the second, not on every tick).
      const moved = [...partitions.values()].some((engine) => {
        const now = tracker.snapshot(engine.partition);
        const committed = committedWatermarks.get(engine.partition);
        const slack = engine.size() > 0 ? 0 : 1_000;
        if (now.watermark > (committed?.watermark ?? Number.NEGATIVE_INFINITY) + slack) return true;
        return [...now.types].some(([type, w]) => w > (committed?.types.get(type) ?? Number.NEGATIVE_INFINITY) + slack);
      });
      return processed + (moved ? 1 : 0);
    },

    async checkpoint(tx: Tx) {
      const owned = [...partitions.keys()];
      const snapshots = new Map(owned.map((p) => [p, tracker.snapshot(p)]));
      const changes = [...partitions.values()].map((engine) => {
        const snapshot = snapshots.get(engine.partition);
        // A type that has not appeared in the partition stands at the partition's watermark.
        engine.finalize(snapshot ? (type: string) => snapshot.types.get(type) ?? snapshot.watermark : Number.NEGATIVE_INFINITY);
        return engine.changes();
      });
      await deleteRows(tx, changes.flatMap((c) => c.deletes));
      await upsertRows(tx, changes.flatMap((c) => c.upserts));
      if (owned.length > 0) {
        const marks = owned.map((p) => snapshots.get(p) ?? { watermark: Number.NEGATIVE_INFINITY, types: new Map<string, number>() });
        await tx`
          insert into window_progress (job, partition, watermark, type_watermarks, source_offset, late_events, updated_at)
          select ${WINDOWS_JOB}, partition, watermark, type_watermarks::jsonb, source_offset, late_events, now()
          from unnest(${owned}::int[], ${marks.map((m) => stored(m.watermark))}::bigint[],
                      ${marks.map((m) => JSON.stringify(Object.fromEntries([...m.types].flatMap(([type, w]) => (Number.isFinite(w) ? [[type, Math.floor(w)]] : [])))))}::text[],
                      ${owned.map((p) => sourceOffsets.get(p) ?? -1)}::bigint[], ${owned.map((p) => lateCounts.get(p) ?? 0)}::bigint[])
            as progress(partition, watermark, type_watermarks, source_offset, late_events)
          on conflict (job, partition) do update set watermark = excluded.watermark, type_watermarks = excluded.type_watermarks, source_offset = excluded.source_offset,
            late_events = excluded.late_events, updated_at = excluded.updated_at`;
      }
      const late = lateOut;
      if (late.length > 0) await options.bus.produce(options.topics.late, late);
      return () => {
        for (const change of changes) change.committed();
        lateOut = lateOut.slice(late.length);
        processed = 0;
        for (const [p, snapshot] of snapshots) committedWatermarks.set(p, snapshot);
        windowOpen.set({}, openWindows());
        windowsFinalised.inc({}, changes.reduce((n, c) => n + c.upserts.filter((row) => row.final).length, 0));
        lateEvents.inc({}, late.length);
      };
    },

    close: async () => clearInterval(unreadTimer),

    stats: () => {
      const watermark = tracker.watermark();
      return {
        late_events: [...lateCounts.values()].reduce((a, b) => a + b, 0),
        replays_dropped: replaysDropped,
        open_windows: openWindows(),
        watermark: Number.isFinite(watermark) ? watermark : null,
      };
    },
  };
}
