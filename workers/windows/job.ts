import type { Batch, Bus, OutgoingRecord, PartitionOffset, TopicPartition } from "../../lib/bus/types.ts";
import type { Sql, Tx } from "../../lib/db/index.ts";
import { tryDecodeEnvelope } from "../../lib/events/index.ts";
import type { Logger } from "../../lib/log.ts";
import type { Topics } from "../../lib/topics.ts";
import { parseSource, SOURCE_HEADER } from "../../lib/windows/source.ts";
import { type AnyView, DEFAULT_LATENESS_MS, WINDOWS_JOB } from "../../lib/windows/views.ts";
import { undecodableRecords, windowOpen } from "../../lib/metrics.ts";
import type { DeadLetterSink } from "../dead-letters.ts";
import type { StreamJob } from "../runner.ts";
import { PartitionWindows, type RowId, type WindowRow } from "./engine.ts";
import { WatermarkTracker } from "./watermark.ts";

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

/**
 * events.enriched → window aggregates in Postgres. Each input partition has its own window state
 * (PartitionWindows), reloaded from its open rows by whichever worker owns the partition. Rows, the
 * watermark and the input positions commit in one transaction; events behind the watermark go to
 * events.late and are counted, never applied.
 */
export function createWindowsJob(options: WindowsJobOptions): StreamJob & { stats: () => WindowsStats } {
  const tracker = new WatermarkTracker({ latenessMs: options.latenessMs ?? DEFAULT_LATENESS_MS, idleTimeoutMs: options.idleTimeoutMs ?? 30_000, now: options.now });
  const partitions = new Map<number, PartitionWindows>();
  const sourceOffsets = new Map<number, number>();
  const lateCounts = new Map<number, number>();
  /** Partitions taken over with a backlog: the end offset seen then, which they must reach before they may go idle. */
  const catchUpTo = new Map<number, number>();
  /** Next offset to read per owned partition of events.enriched. */
  const delivered = new Map<number, number>();
  let lateOut: OutgoingRecord[] = [];
  let processed = 0;
  let replaysDropped = 0;
  /** Each partition's watermark as last committed: a checkpoint is due when one has moved. */
  const committedWatermarks = new Map<number, number>();

  /**
   * A partition is only truly idle when its source is: enriched partition p is fed from events.raw
   * partition p by the enrich job, and while enrich lags there (restarting, rebalancing) silence on p
   * means nothing. Checked once a second: raw end offsets against enrich's committed positions.
   */
  const checkUpstream = async () => {
    const owned = [...partitions.keys()];
    if (owned.length === 0) return;
    const [rawEnds, enrichedEnds, positions] = await Promise.all([
      options.bus.endOffsets(options.topics.raw),
      options.bus.endOffsets(options.topics.enriched),
      options.sql<{ partition: number; next_offset: number }[]>`select partition, next_offset from job_offsets where job = 'enrich' and topic = ${options.topics.raw}`,
    ]);
    for (const p of owned) {
      const enrichBehind = (positions.find((r) => r.partition === p)?.next_offset ?? 0) < (rawEnds.find((e) => e.partition === p)?.offset ?? 0);
      const unread = (delivered.get(p) ?? 0) < (enrichedEnds.find((e) => e.partition === p)?.offset ?? 0);
      if (enrichBehind || unread) tracker.hold(p, "upstream");
      else tracker.release(p, "upstream");
    }
  };
  const upstreamTimer = setInterval(() => checkUpstream().catch((error: unknown) => options.logger.warn("upstream check failed; partitions stay held", { error })), 1_000);

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
      catchUpTo.delete(partition);
      delivered.delete(partition);
    }
    tracker.revoke(gone);
  };
  const openWindows = () => [...partitions.values()].reduce((sum, p) => sum + p.size(), 0);

  return {
    name: WINDOWS_JOB,
    input: options.topics.enriched,

    async assigned(assignment: TopicPartition[], sql: Sql, starts: PartitionOffset[]) {
      const fresh = assignment.map((a) => a.partition).filter((p) => !partitions.has(p));
      if (fresh.length === 0) return;
      const rows = await sql<{ view: string; key: string; partition: number; window_start: Date; window_end: Date; final: boolean; state: unknown }[]>`
        select view, key, partition, window_start, window_end, final, state from aggregates where partition = any(${fresh}) and not final`;
      const progress = await sql<{ partition: number; watermark: number | null; source_offset: number; late_events: number }[]>`
        select partition, watermark, source_offset, late_events from window_progress where job = ${WINDOWS_JOB} and partition = any(${fresh})`;
      for (const p of fresh) {
        windowsOf(p).load(rows.filter((r) => r.partition === p).map((r) => ({ view: r.view, key: r.key, partition: p, start: r.window_start.getTime(), end: r.window_end.getTime(), final: r.final, acc: r.state })));
        const saved = progress.find((r) => r.partition === p);
        sourceOffsets.set(p, saved?.source_offset ?? -1);
        lateCounts.set(p, saved?.late_events ?? 0);
        if (saved?.watermark !== null && saved?.watermark !== undefined) {
          tracker.restore(p, saved.watermark);
          committedWatermarks.set(p, saved.watermark);
        }
      }
      tracker.assign(fresh);
      // Not idle until the upstream check has seen the enrich job caught up on these partitions.
      for (const p of fresh) tracker.hold(p, "upstream");
      // A backlog may take longer than the idle timeout to start arriving (rebalance, first fetch): until it
      // is read, the partition must not be idle, or the partitions that ran ahead would make it late.
      const ends = await options.bus.endOffsets(options.topics.enriched);
      for (const p of fresh) {
        delivered.set(p, starts.find((s) => s.partition === p)?.offset ?? 0);
        const end = ends.find((e) => e.partition === p)?.offset ?? 0;
        if ((starts.find((s) => s.partition === p)?.offset ?? 0) < end) {
          catchUpTo.set(p, end);
          tracker.hold(p, "backlog");
        }
      }
      options.logger.info("window state loaded", { partitions: fresh, open_windows: rows.length, catching_up: [...catchUpTo.keys()] });
    },

    reset() {
      forget([...partitions.keys()]);
      lateOut = [];
      processed = 0;
    },

    revoked(revoked: TopicPartition[]) {
      forget(revoked.map((r) => r.partition));
    },

    process(batch: Batch, dead: DeadLetterSink) {
      const engine = windowsOf(batch.partition);
      for (const record of batch.records) {
        const source = parseSource(record.headers[SOURCE_HEADER]);
        if (source) {
          // Enriched partition p holds what events.raw partition p held, in order: a lower offset is a replay.
          if (source.offset <= (sourceOffsets.get(source.partition) ?? -1)) {
            replaysDropped++;
            continue;
          }
          sourceOffsets.set(source.partition, source.offset);
        }
        const event = tryDecodeEnvelope(record.value);
        if (!event) {
          // Set aside, never retried: failing the batch would apply its earlier records a second time.
          undecodableRecords.inc({ job: "windows" });
          dead(record, "not an event envelope");
          continue;
        }
        const late = engine.apply(event, tracker.watermarkOf(batch.partition));
        if (late.length > 0) {
          lateCounts.set(batch.partition, (lateCounts.get(batch.partition) ?? 0) + 1);
          // The record's own headers (its events.raw position) go along, so a consumer can drop the copy a
          // retried checkpoint produces again.
          lateOut.push({ key: record.key, value: record.value, timestamp: event.event_time, headers: { ...record.headers, "devpipe-late-views": late.join(",") } });
        }
        tracker.observe(batch.partition, event.event_time);
        processed++;
      }
      const last = batch.records[batch.records.length - 1];
      if (last) delivered.set(batch.partition, last.offset + 1);
      const target = catchUpTo.get(batch.partition);
      if (last && target !== undefined && last.offset + 1 >= target) {
        catchUpTo.delete(batch.partition);
        tracker.release(batch.partition, "backlog");
      }
    },

    /** Records to commit, plus one when a partition's watermark has moved while it has open windows (they may close). */
    pending: () => {
      // Readers take the slowest partition's watermark as the merged windows' one, so even a partition with
      // no open window publishes its progress (by the second, not on every tick).
      const moved = [...partitions.values()].some((engine) => {
        const committed = committedWatermarks.get(engine.partition) ?? Number.NEGATIVE_INFINITY;
        return tracker.watermarkOf(engine.partition) > committed + (engine.size() > 0 ? 0 : 1_000);
      });
      return processed + (moved ? 1 : 0);
    },

    async checkpoint(tx: Tx) {
      const watermarks = new Map([...partitions.keys()].map((p) => [p, tracker.watermarkOf(p)]));
      const changes = [...partitions.values()].map((engine) => {
        engine.finalize(watermarks.get(engine.partition) ?? Number.NEGATIVE_INFINITY);
        return engine.changes();
      });
      await deleteRows(tx, changes.flatMap((c) => c.deletes));
      await upsertRows(tx, changes.flatMap((c) => c.upserts));
      const owned = [...partitions.keys()];
      if (owned.length > 0) {
        await tx`
          insert into window_progress (job, partition, watermark, source_offset, late_events, updated_at)
          select ${WINDOWS_JOB}, partition, watermark, source_offset, late_events, now()
          from unnest(${owned}::int[], ${owned.map((p) => {
            const w = watermarks.get(p) ?? Number.NEGATIVE_INFINITY;
            return Number.isFinite(w) ? String(Math.floor(w)) : null;
          })}::bigint[], ${owned.map((p) => sourceOffsets.get(p) ?? -1)}::bigint[], ${owned.map((p) => lateCounts.get(p) ?? 0)}::bigint[])
            as progress(partition, watermark, source_offset, late_events)
          on conflict (job, partition) do update set watermark = excluded.watermark, source_offset = excluded.source_offset, late_events = excluded.late_events, updated_at = excluded.updated_at`;
      }
      const late = lateOut;
      if (late.length > 0) await options.bus.produce(options.topics.late, late);
      return () => {
        for (const change of changes) change.committed();
        lateOut = lateOut.slice(late.length);
        processed = 0;
        for (const [p, w] of watermarks) committedWatermarks.set(p, w);
        windowOpen.set({}, openWindows());
      };
    },

    close: async () => clearInterval(upstreamTimer),

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
