/**
 * Event-time progress of one job's input. Per partition, the watermark is the largest event time seen
 * minus the allowed lateness; the job's watermark is the minimum over partitions that are not idle. A
 * partition silent for `idleTimeoutMs` stops holding it back, and when every partition is idle a
 * wall-clock rule (now − lateness) lets the last windows close. The watermark never moves back.
 */
export interface WatermarkOptions {
  latenessMs: number;
  idleTimeoutMs: number;
  now?: () => number;
}

interface PartitionProgress {
  maxEventTime: number;
  lastActivity: number;
}

export class WatermarkTracker {
  private readonly partitions = new Map<number, PartitionProgress>();
  private current = Number.NEGATIVE_INFINITY;
  private readonly now: () => number;

  constructor(private readonly options: WatermarkOptions) {
    if (options.latenessMs < 0 || options.idleTimeoutMs <= 0) throw new RangeError("lateness must be ≥ 0 and the idle timeout > 0");
    this.now = options.now ?? Date.now;
  }

  /** Partitions now owned: each holds the watermark back until it has data or has been idle. */
  assign(partitions: number[]) {
    const at = this.now();
    for (const p of partitions) if (!this.partitions.has(p)) this.partitions.set(p, { maxEventTime: Number.NEGATIVE_INFINITY, lastActivity: at });
  }

  revoke(partitions: number[]) {
    for (const p of partitions) this.partitions.delete(p);
  }

  observe(partition: number, eventTime: number) {
    const progress = this.partitions.get(partition) ?? { maxEventTime: Number.NEGATIVE_INFINITY, lastActivity: 0 };
    progress.maxEventTime = Math.max(progress.maxEventTime, eventTime);
    progress.lastActivity = this.now();
    this.partitions.set(partition, progress);
  }

  /** Restores progress persisted at a checkpoint, so a restart does not reopen closed windows. */
  restore(watermark: number) {
    this.current = Math.max(this.current, watermark);
  }

  watermark(): number {
    const at = this.now();
    const active = [...this.partitions.values()].filter((p) => at - p.lastActivity < this.options.idleTimeoutMs);
    const candidate = active.length > 0 ? Math.min(...active.map((p) => p.maxEventTime)) - this.options.latenessMs : at - this.options.latenessMs;
    if (candidate > this.current) this.current = candidate;
    return this.current;
  }
}
