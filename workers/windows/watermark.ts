/**
 * Event-time progress of a job's input, kept per partition and, within a partition, per event type (a
 * "stream" below): devices of one domain late or replaying history hold back their own type only.
 *
 * Watermarks per (partition, event type):
 * - An event of type T in partition p is judged late against the watermark of (p, T), and the windows
 *   of a view close at the minimum of the watermarks of the types it reads (in that partition). Another
 *   type's progress never makes T late: sensors of a partition uploading an hour of history are judged
 *   by the sensors' progress there, current user activity of the same partition by its own.
 * - An active stream's watermark is the largest event time it delivered minus the allowed lateness.
 * - A stream silent for `idleTimeoutMs` is idle and stops holding anything back: it follows the slowest
 *   active stream of its own type in the other partitions, or, when no stream of its type is active,
 *   the slowest active stream of any type. When nothing is active, event time is taken to move on with
 *   the wall clock from the last record (largest event time − lateness + wall time since it arrived), so
 *   the last windows close. With no record at all nothing moves: jumping to now − lateness would make
 *   replayed history late wholesale.
 * - A partition is held while it has input to catch up on (see the job): none of its types is idle while
 *   held, and time held does not count as silence.
 * - The partition's watermark, the value readers use ("a merged window is final once every partition's
 *   watermark has passed it", window_progress.watermark), is the minimum over the types that have
 *   appeared in the partition; a partition where no type has appeared yet follows the same idle rule
 *   as a stream. A type that has never appeared in a partition is no part of that minimum (it holds
 *   nothing back) and behaves as if it stood at the partition's watermark: its first event is judged
 *   against it and its stream starts there. So every stream's watermark is at least its partition's,
 *   and an event a reader could find in a window reported final is always late.
 * - Per-type watermarks and the partition's are persisted at checkpoints and restored when a partition
 *   is taken over, as floors: a restart does not reopen closed windows. A partition taken over after a
 *   crash starts from its restored watermarks and is judged by its own backlog, not by partitions that
 *   ran ahead while it had no owner.
 * Watermarks never move back.
 */
export interface WatermarkOptions {
  latenessMs: number;
  idleTimeoutMs: number;
  now?: () => number;
}

/** The progress of one event type in one partition. */
interface StreamProgress {
  maxEventTime: number;
  lastActivity: number;
  watermark: number;
}

interface PartitionProgress {
  /** The types that have appeared (or were restored) in this partition. */
  streams: Map<string, StreamProgress>;
  /** The partition's watermark: the minimum over its streams, or the idle rule while it has none. */
  watermark: number;
  /** Assignment (or as shifted by holds): idleness of a partition without any stream counts from it. */
  lastActivity: number;
  /** Why the partition may not go idle (input to catch up on): never idle while any. */
  holds: Set<string>;
  /** When the current holds began. */
  heldSince: number;
}

/** A partition's watermarks at one moment: its own (for readers) and each type's that has appeared. */
export interface WatermarkSnapshot {
  watermark: number;
  types: Map<string, number>;
}

export class WatermarkTracker {
  private readonly partitions = new Map<number, PartitionProgress>();
  private readonly now: () => number;

  constructor(private readonly options: WatermarkOptions) {
    if (options.latenessMs < 0 || options.idleTimeoutMs <= 0) throw new RangeError("lateness must be ≥ 0 and the idle timeout > 0");
    this.now = options.now ?? Date.now;
  }

  private progress(partition: number): PartitionProgress {
    let progress = this.partitions.get(partition);
    if (!progress) {
      const at = this.now();
      progress = { streams: new Map(), watermark: Number.NEGATIVE_INFINITY, lastActivity: at, holds: new Set<string>(), heldSince: at };
      this.partitions.set(partition, progress);
    }
    return progress;
  }

  /** A type's stream in a partition; a type appearing for the first time starts at the partition's watermark. */
  private stream(partition: number, type: string): StreamProgress {
    const progress = this.progress(partition);
    let stream = progress.streams.get(type);
    if (!stream) {
      stream = { maxEventTime: Number.NEGATIVE_INFINITY, lastActivity: this.now(), watermark: this.partitionWatermark(partition) };
      progress.streams.set(type, stream);
    }
    return stream;
  }

  /** Partitions now owned: each holds the job's watermark back until it has data or has been idle. */
  assign(partitions: number[]) {
    for (const p of partitions) this.progress(p);
  }

  revoke(partitions: number[]) {
    for (const p of partitions) this.partitions.delete(p);
  }

  owns(partition: number): boolean {
    return this.partitions.has(partition);
  }

  observe(partition: number, type: string, eventTime: number) {
    const stream = this.stream(partition, type);
    stream.maxEventTime = Math.max(stream.maxEventTime, eventTime);
    stream.lastActivity = this.now();
  }

  /**
   * Restores a partition's watermarks persisted at a checkpoint (`types`: per event type; absent when
   * written before watermarks were per type, then every type starts from the partition's): a restart does
   * not reopen closed windows.
   */
  restore(partition: number, watermark: number | null, types: Readonly<Record<string, number>> = {}) {
    const progress = this.progress(partition);
    if (watermark !== null) progress.watermark = Math.max(progress.watermark, watermark);
    for (const [type, mark] of Object.entries(types)) {
      const stream = progress.streams.get(type) ?? { maxEventTime: Number.NEGATIVE_INFINITY, lastActivity: this.now(), watermark: Number.NEGATIVE_INFINITY };
      stream.watermark = Math.max(stream.watermark, mark);
      progress.streams.set(type, stream);
    }
    // No stream below its partition: an event a reader may have seen as final stays late.
    for (const stream of progress.streams.values()) stream.watermark = Math.max(stream.watermark, progress.watermark);
  }

  /** Keeps a partition (every type in it) from going idle for a reason (input to catch up on) until `release`. */
  hold(partition: number, reason: string) {
    const progress = this.progress(partition);
    if (progress.holds.size === 0) progress.heldSince = this.now();
    progress.holds.add(reason);
  }

  release(partition: number, reason: string) {
    const progress = this.progress(partition);
    if (!progress.holds.delete(reason) || progress.holds.size > 0) return;
    // Silence while held was not the devices' silence: idleness counts the silence before the hold and from now.
    const at = this.now();
    const shift = (lastActivity: number) => at - Math.max(0, progress.heldSince - lastActivity);
    progress.lastActivity = shift(progress.lastActivity);
    for (const stream of progress.streams.values()) stream.lastActivity = shift(stream.lastActivity);
  }

  private idle(progress: PartitionProgress, lastActivity: number, at: number) {
    return progress.holds.size === 0 && at - lastActivity >= this.options.idleTimeoutMs;
  }

  /**
   * What an idle stream of `type` follows (an idle partition without streams: `type` undefined): the
   * slowest active stream of that type, else the slowest active stream, else the wall-clock rule.
   */
  private followMark(type: string | undefined, at: number): number {
    const withData: { type: string; stream: StreamProgress; active: boolean }[] = [];
    for (const progress of this.partitions.values()) {
      for (const [t, stream] of progress.streams) {
        if (Number.isFinite(stream.maxEventTime)) withData.push({ type: t, stream, active: !this.idle(progress, stream.lastActivity, at) });
      }
    }
    const active = withData.filter((s) => s.active);
    const sameType = active.filter((s) => s.type === type);
    const slowest = sameType.length > 0 ? sameType : active;
    if (slowest.length > 0) return Math.min(...slowest.map((s) => s.stream.maxEventTime)) - this.options.latenessMs;
    if (withData.length === 0) return Number.NEGATIVE_INFINITY;
    const newest = Math.max(...withData.map((s) => s.stream.maxEventTime));
    const lastRecord = Math.max(...withData.map((s) => s.stream.lastActivity));
    return newest - this.options.latenessMs + (at - lastRecord);
  }

  private streamWatermark(progress: PartitionProgress, type: string, stream: StreamProgress, at: number): number {
    const candidate = this.idle(progress, stream.lastActivity, at) ? this.followMark(type, at) : stream.maxEventTime - this.options.latenessMs;
    if (candidate > stream.watermark) stream.watermark = candidate;
    return stream.watermark;
  }

  /** The watermark events of `type` in `partition` are judged by (the partition's when the type has not appeared there). */
  watermarkOf(partition: number, type: string): number {
    const progress = this.progress(partition);
    const stream = progress.streams.get(type);
    return stream ? this.streamWatermark(progress, type, stream, this.now()) : this.partitionWatermark(partition);
  }

  /** The partition's watermark for readers: the slowest of its types, never above any of them. */
  partitionWatermark(partition: number): number {
    const progress = this.progress(partition);
    const at = this.now();
    const candidate =
      progress.streams.size > 0
        ? Math.min(...[...progress.streams].map(([type, stream]) => this.streamWatermark(progress, type, stream, at)))
        : this.idle(progress, progress.lastActivity, at)
          ? this.followMark(undefined, at)
          : Number.NEGATIVE_INFINITY;
    if (candidate > progress.watermark) progress.watermark = candidate;
    return progress.watermark;
  }

  /** A partition's watermarks, consistent with one another (each type's at least the partition's). */
  snapshot(partition: number): WatermarkSnapshot {
    const watermark = this.partitionWatermark(partition);
    const types = new Map([...this.progress(partition).streams.keys()].map((type) => [type, this.watermarkOf(partition, type)]));
    return { watermark, types };
  }

  /** The job's watermark over the partitions it owns: the slowest of them. */
  watermark(): number {
    const owned = [...this.partitions.keys()];
    return owned.length > 0 ? Math.min(...owned.map((p) => this.partitionWatermark(p))) : Number.NEGATIVE_INFINITY;
  }
}
