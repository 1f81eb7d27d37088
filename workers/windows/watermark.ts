/**
 * Event-time progress of a job's input, kept per partition; each partition's watermark judges its own
 * events late and closes its own windows, and a merged window is final once every partition has passed it.
 *
 * - An active partition's watermark is the largest event time it delivered minus the allowed lateness.
 * - A partition silent for `idleTimeoutMs` is idle and stops holding the job back: it follows the
 *   active partitions (the minimum of their watermarks). When no partition is active, event time is
 *   taken to move on with the wall clock from the last record (largest event time − lateness + wall
 *   time since it arrived), so the last windows still close. With no record at all nothing moves:
 *   jumping to now − lateness would make replayed history late wholesale.
 * - A partition taken over after a crash starts from its restored watermark and is judged by its own
 *   backlog, not by partitions that ran ahead while it had no owner.
 * Watermarks never move back.
 */
export interface WatermarkOptions {
  latenessMs: number;
  idleTimeoutMs: number;
  now?: () => number;
}

interface PartitionProgress {
  maxEventTime: number;
  lastActivity: number;
  watermark: number;
  /** Why the partition may not go idle (catching up on a backlog, upstream behind): never idle while any. */
  holds: Set<string>;
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
      progress = { maxEventTime: Number.NEGATIVE_INFINITY, lastActivity: this.now(), watermark: Number.NEGATIVE_INFINITY, holds: new Set<string>() };
      this.partitions.set(partition, progress);
    }
    return progress;
  }

  /** Partitions now owned: each holds the job's watermark back until it has data or has been idle. */
  assign(partitions: number[]) {
    for (const p of partitions) this.progress(p);
  }

  revoke(partitions: number[]) {
    for (const p of partitions) this.partitions.delete(p);
  }

  observe(partition: number, eventTime: number) {
    const progress = this.progress(partition);
    progress.maxEventTime = Math.max(progress.maxEventTime, eventTime);
    progress.lastActivity = this.now();
  }

  /** Restores a partition's watermark persisted at a checkpoint: a restart does not reopen closed windows. */
  restore(partition: number, watermark: number) {
    const progress = this.progress(partition);
    progress.watermark = Math.max(progress.watermark, watermark);
  }

  /** Keeps a partition from going idle for a reason (a backlog to read, an upstream behind) until `release`. */
  hold(partition: number, reason: string) {
    this.progress(partition).holds.add(reason);
  }

  release(partition: number, reason: string) {
    const progress = this.progress(partition);
    // Idleness counts from the release: silence while held was not the devices' silence.
    if (progress.holds.delete(reason) && progress.holds.size === 0) progress.lastActivity = this.now();
  }

  private idle(progress: PartitionProgress, at: number) {
    return progress.holds.size === 0 && at - progress.lastActivity >= this.options.idleTimeoutMs;
  }

  /** What an idle partition follows: the slowest active partition, or the wall-clock rule when none is active. */
  private followMark(at: number): number {
    const withData = [...this.partitions.values()].filter((p) => Number.isFinite(p.maxEventTime));
    const active = withData.filter((p) => !this.idle(p, at));
    if (active.length > 0) return Math.min(...active.map((p) => p.maxEventTime)) - this.options.latenessMs;
    if (withData.length === 0) return Number.NEGATIVE_INFINITY;
    const newest = Math.max(...withData.map((p) => p.maxEventTime));
    const lastRecord = Math.max(...withData.map((p) => p.lastActivity));
    return newest - this.options.latenessMs + (at - lastRecord);
  }

  watermarkOf(partition: number): number {
    const progress = this.progress(partition);
    const at = this.now();
    const candidate = this.idle(progress, at) ? this.followMark(at) : progress.maxEventTime - this.options.latenessMs;
    if (candidate > progress.watermark) progress.watermark = candidate;
    return progress.watermark;
  }

  /** The job's watermark over the partitions it owns: the slowest of them. */
  watermark(): number {
    const owned = [...this.partitions.keys()];
    return owned.length > 0 ? Math.min(...owned.map((p) => this.watermarkOf(p))) : Number.NEGATIVE_INFINITY;
  }
}
