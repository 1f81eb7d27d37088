import type { Batch, Consumer, PartitionOffset, TopicPartition } from "../lib/bus/types.ts";
import type { Sql, Tx } from "../lib/db/index.ts";
import type { Logger } from "../lib/log.ts";
import { backoffDelay } from "../lib/retry.ts";
import type { Services } from "../lib/services.ts";

/**
 * A stream job as the runner hosts it. `process` turns a batch into pending results held in memory;
 * `checkpoint` writes them inside the transaction in which the runner also stores the input positions
 * (table job_offsets), so results and positions commit together or not at all. After a crash the job
 * restarts from the stored positions and recomputes whatever had not been committed.
 */
export interface StreamJob {
  readonly name: string;
  readonly input: string;
  /** Called after a (re)balance with the partitions now owned and where each resumes, before any of their records. */
  assigned?(partitions: TopicPartition[], sql: Sql, starts: PartitionOffset[]): Promise<void>;
  process(batch: Batch): Promise<void> | void;
  /** Records processed since the last checkpoint; the runner checkpoints early past `maxPending`. */
  pending(): number;
  /**
   * Writes the pending results inside `tx`. Returns what to do once `tx` has committed (typically:
   * forget those results); when the commit fails they stay pending and go out with the next checkpoint.
   */
  checkpoint(tx: Tx): Promise<(() => void) | void>;
  /** Told after a checkpoint's transaction has rolled back (the database is free to use again). */
  checkpointFailed?(error: unknown): Promise<void>;
  /** Frees the state of partitions this worker no longer owns (after their last checkpoint). */
  revoked?(partitions: TopicPartition[]): void;
  close?(): Promise<void>;
}

export interface RunnerOptions {
  /** How often results and positions are committed. */
  commitIntervalMs?: number;
  /** A checkpoint is taken at once when this many records await one. */
  maxPending?: number;
}

/** One async critical section: batch handling and checkpoints never interleave. */
function createMutex() {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(work: () => Promise<T>): Promise<T> => {
    const run = tail.then(work, work);
    tail = run.catch(() => undefined);
    return run;
  };
}

export async function loadPositions(sql: Sql, job: string, partitions: TopicPartition[]): Promise<PartitionOffset[]> {
  if (partitions.length === 0) return [];
  const rows = await sql<{ topic: string; partition: number; next_offset: number }[]>`
    select topic, partition, next_offset from job_offsets where job = ${job}`;
  return partitions.flatMap((tp) => {
    const row = rows.find((r) => r.topic === tp.topic && r.partition === tp.partition);
    return row ? [{ ...tp, offset: row.next_offset }] : [];
  });
}

/** Runs a job as a member of its consumer group until `stop()` is called. */
export async function runJob(job: StreamJob, services: Pick<Services, "bus" | "db" | "logger" | "config">, options: RunnerOptions = {}) {
  const logger: Logger = services.logger.child({ job: job.name });
  const { sql } = services.db;
  const commitIntervalMs = options.commitIntervalMs ?? 250;
  const maxPending = options.maxPending ?? 20_000;
  const exclusive = createMutex();
  /** Next offset per partition processed since the last checkpoint. */
  const advanced = new Map<string, PartitionOffset>();
  let consumer: Consumer | undefined;
  let failuresInARow = 0;
  let stopping = false;

  const checkpoint = () =>
    exclusive(async () => {
      if (advanced.size === 0 && job.pending() === 0) return;
      const positions = [...advanced.values()];
      const afterCommit = await sql
        .begin(async (tx) => {
          const committed = await job.checkpoint(tx);
          for (const p of positions) {
            await tx`insert into job_offsets (job, topic, partition, next_offset, updated_at) values (${job.name}, ${p.topic}, ${p.partition}, ${p.offset}, now())
                     on conflict (job, topic, partition) do update set next_offset = excluded.next_offset, updated_at = excluded.updated_at`;
          }
          return committed;
        })
        .catch(async (error: unknown) => {
          await job.checkpointFailed?.(error).catch((failure: unknown) => logger.warn("recording a failed checkpoint failed", { error: failure }));
          throw error;
        });
      afterCommit?.();
      advanced.clear();
      // The bus's own group offsets only feed lag metrics; the positions of record are in job_offsets.
      await consumer?.commit(positions).catch((error: unknown) => logger.warn("bus offset commit failed (lag metrics only)", { error }));
    });

  const timer = setInterval(() => {
    checkpoint().then(
      () => {
        if (failuresInARow > 0) logger.info("checkpoints succeed again", { failed_before: failuresInARow });
        failuresInARow = 0;
      },
      (error: unknown) => {
        // Logged on the first failure and then every 100th, not on every tick.
        if (failuresInARow++ % 100 === 0) logger.error("checkpoint failed; its results stay pending and go out with the next one", { error, failures_in_a_row: failuresInARow });
      },
    );
  }, commitIntervalMs);

  consumer = await services.bus.consume({
    // The group shares the topics' prefix; positions of record stay keyed by the job's name in job_offsets.
    group: `${services.config.topicPrefix}${job.name}`,
    topics: [job.input],
    onAssign: async (partitions) =>
      exclusive(async () => {
        const starts = await loadPositions(sql, job.name, partitions);
        await job.assigned?.(partitions, sql, starts);
        logger.info("partitions assigned", { partitions: partitions.map((p) => p.partition), resume: starts.map((s) => [s.partition, s.offset]) });
        return starts;
      }),
    onRevoke: async (partitions) => {
      await checkpoint();
      job.revoked?.(partitions);
    },
    onBatch: async (batch) => {
      await exclusive(async () => {
        await job.process(batch);
        const last = batch.records[batch.records.length - 1];
        if (last) advanced.set(`${batch.topic}/${batch.partition}`, { topic: batch.topic, partition: batch.partition, offset: last.offset + 1 });
      });
      // Past maxPending the batch is not done until a checkpoint commits: that is the backpressure that
      // bounds memory while the database is down. The batch must not fail here: it has been processed, and
      // a redelivery would apply it twice.
      for (let attempt = 0; job.pending() >= maxPending && !stopping; attempt++) {
        try {
          await checkpoint();
        } catch (error) {
          if (attempt % 20 === 0) logger.error("checkpoint failed with results pending at the limit; consumption waits for it", { error, pending: job.pending(), attempt });
          await Bun.sleep(backoffDelay(attempt, { initialDelayMs: 50, maxDelayMs: 2_000 }) + 10);
        }
      }
    },
  });

  return {
    /** Finishes the batch in hand, commits what was processed, and leaves the group. */
    async stop() {
      stopping = true;
      clearInterval(timer);
      await consumer?.stop();
      await checkpoint();
      await job.close?.();
    },
  };
}
