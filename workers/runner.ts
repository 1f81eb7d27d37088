import type { Batch, DeliveredRecord, PartitionOffset, TopicPartition } from "../lib/bus/types.ts";
import type { Sql, Tx } from "../lib/db/index.ts";
import { AppError } from "../lib/errors.ts";
import { checkpointFailedAt, checkpointStarted, checkpointSucceeded, jobStopped } from "../lib/job-health.ts";
import type { Logger } from "../lib/log.ts";
import { checkpointFailures } from "../lib/metrics.ts";
import { backoffDelay } from "../lib/retry.ts";
import type { Services } from "../lib/services.ts";
import { type DeadLetter, deadLetterSink, type DeadLetterSink } from "./dead-letters.ts";
import { isRecordFault } from "./record-faults.ts";
import type { ChainSource, OperatorConsumer } from "./chain/chain.ts";
import type { ChainBatch } from "./chain/types.ts";

/**
 * A stream job as the runner hosts it: an operator of the chain (workers/chain), fed the records of
 * events.raw decoded, deduplicated and enriched. `process` turns a batch into pending results held in memory;
 * `checkpoint` writes them inside the transaction in which the runner also stores the input positions
 * (table job_offsets), so results and positions commit together or not at all. After a crash the job
 * restarts from the stored positions and recomputes whatever had not been committed.
 */
export interface StreamJob {
  readonly name: string;
  readonly input: string;
  /** Called after a (re)balance with the partitions now owned and where each resumes, before any of their records. */
  assigned?(partitions: TopicPartition[], sql: Sql, starts: PartitionOffset[]): Promise<void>;
  /**
   * Adds a batch to the pending results. A record the job cannot use at all (not an envelope) goes to
   * `dead`, which sends it to events.dead with the next checkpoint.
   */
  process(batch: ChainBatch, dead: DeadLetterSink): Promise<void> | void;
  /** Records processed since the last checkpoint; the runner checkpoints early past `maxPending`. */
  pending(): number;
  /**
   * Writes the pending results inside `tx`. Returns what to do once `tx` has committed (typically:
   * forget those results); when the commit fails they stay pending and go out with the next checkpoint.
   */
  checkpoint(tx: Tx): Promise<(() => void) | void>;
  /** Told after a checkpoint's transaction has rolled back (the database is free to use again). */
  checkpointFailed?(error: unknown): Promise<void>;
  /**
   * Forgets every result not yet committed and the state of every partition. The runner then calls
   * `assigned` again with the committed positions and replays the records since, a few at a time, to
   * find the one a sink refuses.
   */
  reset(): void;
  /** Frees the state of partitions this worker no longer owns (after their last checkpoint). */
  revoked?(partitions: TopicPartition[]): void;
  close?(): Promise<void>;
}

export interface RunnerOptions {
  /** How often results and positions are committed. */
  commitIntervalMs?: number;
  /** How often the timer commits input positions when no result is pending (default: commitIntervalMs). */
  positionsIntervalMs?: number;
  /** A checkpoint is taken at once when this many records await one. */
  maxPending?: number;
  /** Records that may wait for the critical section while a checkpoint holds it, before delivery waits too. */
  maxQueued?: number;
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

/** Another worker committed positions of a partition this one was processing: what this one holds is stale. */
class PositionsFencedError extends AppError {
  constructor(partition: TopicPartition) {
    super("positions_fenced", `${partition.topic}/${partition.partition} was committed by another owner since this worker read its position`);
  }
}

const partitionId = (tp: TopicPartition) => `${tp.topic}/${tp.partition}`;

/**
 * Stores `positions` only where job_offsets still holds what this worker last read or wrote there
 * (`expected`; null: no row yet). Otherwise another owner got the partition in between (a rebalance
 * whose revoke and assign raced across processes), and the transaction must not commit: that is the
 * fence that keeps a late final flush of the old owner, or a new owner that read too early, from
 * applying records a second time.
 */
async function savePositions(tx: Tx, job: string, positions: PartitionOffset[], expected: ReadonlyMap<string, number | null>) {
  const owned = positions.filter((p) => expected.get(partitionId(p)) !== undefined);
  const unowned = positions.find((p) => expected.get(partitionId(p)) === undefined);
  if (unowned) throw new PositionsFencedError(unowned);
  const fresh = owned.filter((p) => expected.get(partitionId(p)) === null);
  const moved = owned.filter((p) => expected.get(partitionId(p)) !== null);
  // One statement per kind, whatever the number of partitions: checkpoints run every few ms.
  const inserted = fresh.length === 0 ? [] : await tx<{ topic: string; partition: number }[]>`
    insert into job_offsets (job, topic, partition, next_offset, updated_at)
    select ${job}, topic, partition, next_offset, now() from unnest(${fresh.map((p) => p.topic)}::text[], ${fresh.map((p) => p.partition)}::int[], ${fresh.map((p) => p.offset)}::bigint[]) as f(topic, partition, next_offset)
    on conflict (job, topic, partition) do nothing returning topic, partition`;
  const updated = moved.length === 0 ? [] : await tx<{ topic: string; partition: number }[]>`
    update job_offsets o set next_offset = m.next_offset, updated_at = now()
    from unnest(${moved.map((p) => p.topic)}::text[], ${moved.map((p) => p.partition)}::int[], ${moved.map((p) => p.offset)}::bigint[], ${moved.map((p) => expected.get(partitionId(p)) ?? 0)}::bigint[]) as m(topic, partition, next_offset, before)
    where o.job = ${job} and o.topic = m.topic and o.partition = m.partition and o.next_offset = m.before
    returning o.topic, o.partition`;
  const stored = new Set([...inserted, ...updated].map(partitionId));
  const fenced = owned.find((p) => !stored.has(partitionId(p)));
  if (fenced) throw new PositionsFencedError(fenced);
}

/** Consecutive records of one partition as batches, in the order given. */
function batchesOf<R extends DeliveredRecord>(records: R[]): { topic: string; partition: number; records: R[] }[] {
  const batches: { topic: string; partition: number; records: R[] }[] = [];
  for (const record of records) {
    const last = batches[batches.length - 1];
    if (last && last.topic === record.topic && last.partition === record.partition) last.records.push(record);
    else batches.push({ topic: record.topic, partition: record.partition, records: [record] });
  }
  return batches;
}

/** Per partition, the position after the last of `records`. */
function positionsAfter(records: DeliveredRecord[]): PartitionOffset[] {
  const next = new Map<string, PartitionOffset>();
  for (const r of records) next.set(`${r.topic}/${r.partition}`, { topic: r.topic, partition: r.partition, offset: r.offset + 1 });
  return [...next.values()];
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Runs a job as an operator of `chain` until `stop()` is called. */
export async function runJob(job: StreamJob, chain: ChainSource, services: Pick<Services, "bus" | "db" | "logger" | "config" | "topics">, options: RunnerOptions = {}) {
  const logger: Logger = services.logger.child({ job: job.name });
  const { sql } = services.db;
  const commitIntervalMs = options.commitIntervalMs ?? 250;
  const positionsIntervalMs = Math.max(commitIntervalMs, options.positionsIntervalMs ?? 0);
  let positionsCommittedAt = 0;
  const maxPending = options.maxPending ?? 20_000;
  const exclusive = createMutex();
  /** Records of batches handed over and waiting for the critical section (a checkpoint holds it). */
  let queued = 0;
  const maxQueued = Math.min(maxPending, options.maxQueued ?? 20_000);
  const deadLetters = deadLetterSink(services, job.name, logger);
  /** Next offset per partition processed since the last checkpoint. */
  const advanced = new Map<string, PartitionOffset>();
  /**
   * The batches handled since the last checkpoint, in delivery order, as the bus delivered them (the decoded
   * events are garbage once processed; isolation decodes again). Each partition's records are in offset
   * order, so any prefix of their records ends every partition at a position it may commit.
   */
  let uncommitted: Batch[] = [];
  let uncommittedRecords = 0;
  const setUncommitted = (batches: Batch[]) => {
    uncommitted = batches;
    uncommittedRecords = batches.reduce((sum, b) => sum + b.records.length, 0);
  };
  /** Records the job sent to `dead` since the last checkpoint. */
  let dead: DeadLetter[] = [];
  /** A sink refused a checkpoint (or the job failed on a record): the next one isolates the culprits. */
  let isolating = false;
  /** Per owned partition, the position job_offsets holds as this worker last read or wrote it (null: none). */
  const expected = new Map<string, number | null>();
  const expectFrom = (partitions: TopicPartition[], starts: PartitionOffset[]) => {
    for (const tp of partitions) expected.set(partitionId(tp), starts.find((s) => s.topic === tp.topic && s.partition === tp.partition)?.offset ?? null);
  };
  let consumer: OperatorConsumer | undefined;
  let failuresInARow = 0;
  let stopping = false;
  checkpointStarted(job.name);

  const collectDead: DeadLetterSink = (record, reason) => {
    dead.push({ record, reason });
  };

  /** Hands a batch to the job; a record the chain found to be no envelope goes to events.dead from here. */
  const processBatch = (batch: ChainBatch) => {
    for (const record of batch.records) if (record.undecodable) collectDead(record, "not an event envelope");
    return job.process(batch, collectDead);
  };

  /** Commits the pending results with `positions`: the dead letters first (durable in the bus), then one transaction. */
  const commit = async (positions: PartitionOffset[], reportFailure: boolean) => {
    const sending = dead;
    const afterCommit = await sql
      .begin(async (tx) => {
        await deadLetters.send(tx, sending);
        const committed = await job.checkpoint(tx);
        await savePositions(tx, job.name, positions, expected);
        return committed;
      })
      .catch(async (error: unknown) => {
        if (reportFailure && !(error instanceof PositionsFencedError)) await job.checkpointFailed?.(error).catch((failure: unknown) => logger.warn("recording a failed checkpoint failed", { error: failure }));
        throw error;
      });
    afterCommit?.();
    for (const p of positions) expected.set(partitionId(p), p.offset);
    dead = dead.slice(sending.length);
    deadLetters.committed(sending);
    // The bus's own group offsets only feed its tools; the positions of record are in job_offsets.
    await consumer?.commit(positions);
  };

  /**
   * Per partition, the offset of the next record to process: where it was assigned to start, where a fence
   * seeked to, else after the last batch processed. Batches wait for the critical section in a queue, so one
   * fetched before a seek may still arrive: records below the cursor were processed already and are dropped,
   * and a batch past it (a gap) is stale; the records the seek asked for come next.
   */
  const cursor = new Map<string, number>();

  /** Drops every uncommitted result and reloads the owned partitions from what is committed. */
  const reload = async () => {
    job.reset();
    dead = [];
    const owned = (consumer?.assignment() ?? []).filter((tp) => tp.topic === job.input);
    const starts = await loadPositions(sql, job.name, owned);
    expectFrom(owned, starts);
    await job.assigned?.(owned, sql, starts);
    return starts;
  };

  /** Another owner committed meanwhile: drop everything uncommitted and read on from what it committed. */
  const fenced = async (error: PositionsFencedError) => {
    logger.warn("positions were committed by another owner; dropping uncommitted results and resuming from them", { reason: error.message });
    const starts = await reload();
    for (const start of starts) {
      try {
        consumer?.seek(start);
        cursor.set(partitionId(start), start.offset);
      } catch (seekError) {
        logger.info("partition no longer owned; not seeking it", { partition: start.partition, error: seekError });
      }
    }
    setUncommitted([]);
    advanced.clear();
    isolating = false;
  };

  /** Processes `records` from the committed state and commits them; false when a record in them is refused. */
  let refusal: unknown;
  const attempt = async (records: DeliveredRecord[]): Promise<boolean> => {
    await reload();
    try {
      for (const batch of batchesOf(consumer?.redecode(records) ?? [])) await processBatch(batch);
    } catch (error) {
      refusal = error;
      return false;
    }
    try {
      await commit(positionsAfter(records), false);
      return true;
    } catch (error) {
      if (!isRecordFault(error)) throw error;
      refusal = error;
      return false;
    }
  };

  /**
   * Commits the uncommitted records exactly once, each refused record alone to events.dead: halves are
   * retried until the refusal is pinned to one record (k bad records among n cost about 2k·log2(n)
   * attempts). A transient failure on the way stops here; what is committed stays, the rest is retried.
   */
  const isolate = async () => {
    /** What is not committed yet: settle works through it from the front. */
    let remaining = uncommitted.flatMap((b) => b.records);
    const settle = async (records: DeliveredRecord[]): Promise<void> => {
      if (await attempt(records)) {
        remaining = remaining.slice(records.length);
        return;
      }
      const [only] = records;
      if (records.length === 1 && only) {
        await reload();
        dead = [{ record: only, reason: messageOf(refusal) }];
        await commit(positionsAfter(records), false);
        remaining = remaining.slice(1);
        return;
      }
      const half = Math.ceil(records.length / 2);
      await settle(records.slice(0, half));
      await settle(records.slice(half));
    };
    logger.warn("a sink refused a checkpoint; isolating the records responsible", { records: remaining.length, error: refusal });
    try {
      await settle(remaining);
    } finally {
      setUncommitted(batchesOf(remaining));
    }
    await reload();
    isolating = false;
    advanced.clear();
  };

  /** `tick`: the timer's checkpoint, which commits positions alone (no results pending) only every `positionsIntervalMs`. */
  const checkpointOnce = async (tick: boolean) => {
    if (isolating) return isolate();
    if (advanced.size === 0 && job.pending() === 0 && dead.length === 0) return;
    if (tick && job.pending() === 0 && dead.length === 0 && performance.now() - positionsCommittedAt < positionsIntervalMs) return;
    try {
      await commit([...advanced.values()], true);
      positionsCommittedAt = performance.now();
    } catch (error) {
      if (!isRecordFault(error)) throw error;
      refusal = error;
      isolating = true;
      return isolate();
    }
    advanced.clear();
    setUncommitted([]);
  };

  const checkpoint = (tick: boolean) =>
    exclusive(async () => {
      try {
        await checkpointOnce(tick);
      } catch (error) {
        if (!(error instanceof PositionsFencedError)) throw error;
        await fenced(error);
      }
    });

  const checkpointAndTrack = (tick = false) =>
    checkpoint(tick).then(
      () => {
        if (failuresInARow > 0) logger.info("checkpoints succeed again", { failed_before: failuresInARow });
        failuresInARow = 0;
        checkpointSucceeded(job.name);
      },
      (error: unknown) => {
        checkpointFailures.inc({ job: job.name });
        checkpointFailedAt(job.name, error);
        // Logged on the first failure and then every 100th, not on every tick.
        if (failuresInARow++ % 100 === 0) logger.error("checkpoint failed; its results stay pending and go out with the next one", { error, failures_in_a_row: failuresInARow });
        throw error;
      },
    );

  const timer = setInterval(() => checkpointAndTrack(true).catch(() => undefined), commitIntervalMs);

  const forget = (partitions: TopicPartition[]) => {
    const gone = (topic: string, partition: number) => partitions.some((p) => p.topic === topic && p.partition === partition);
    setUncommitted(uncommitted.filter((b) => !gone(b.topic, b.partition)));
    for (const p of partitions) advanced.delete(`${p.topic}/${p.partition}`);
  };

  consumer = await chain.subscribe({
    name: job.name,
    onAssign: async (partitions) =>
      exclusive(async () => {
        const starts = await loadPositions(sql, job.name, partitions);
        expectFrom(partitions, starts);
        for (const tp of partitions) cursor.delete(partitionId(tp));
        for (const start of starts) cursor.set(partitionId(start), start.offset);
        await job.assigned?.(partitions, sql, starts);
        logger.info("partitions assigned", { partitions: partitions.map((p) => p.partition), resume: starts.map((s) => [s.partition, s.offset]) });
        return starts;
      }),
    onRevoke: async (partitions) => {
      try {
        await checkpointAndTrack();
      } finally {
        // Whatever did not commit is the new owner's to read again.
        await exclusive(async () => {
          forget(partitions);
          for (const p of partitions) {
            expected.delete(partitionId(p));
            cursor.delete(partitionId(p));
          }
        });
        job.revoked?.(partitions);
      }
    },
    onBatch: async (batch) => {
      queued += batch.records.length;
      const handled = exclusive(async () => {
        queued -= batch.records.length;
        const next = cursor.get(partitionId(batch));
        const first = batch.records[0]?.offset ?? 0;
        if (next !== undefined && first > next) return;
        if (next !== undefined && first < next) {
          batch = { ...batch, records: batch.records.filter((r) => r.offset >= next) };
          if (batch.records.length === 0) return;
        }
        uncommitted.push({ topic: batch.topic, partition: batch.partition, records: batch.records.map((r) => r.raw) });
        uncommittedRecords += batch.records.length;
        const last = batch.records[batch.records.length - 1];
        if (last) {
          advanced.set(`${batch.topic}/${batch.partition}`, { topic: batch.topic, partition: batch.partition, offset: last.offset + 1 });
          cursor.set(partitionId(batch), last.offset + 1);
        }
        if (isolating) return;
        try {
          await processBatch(batch);
        } catch (error) {
          // The batch must not fail: the bus would bring it back forever. The next checkpoint isolates the record.
          logger.warn("a record failed processing; the next checkpoint isolates it", { partition: batch.partition, from: batch.records[0]?.offset, error });
          refusal = error;
          isolating = true;
        }
      });
      // While a checkpoint runs (a lake flush, a slow transaction) the batch waits its turn in the queue and the
      // chain goes on feeding the other operators; only a long queue holds it back.
      if (queued >= maxQueued) await handled;
      // Past maxPending the batch is not done until a checkpoint commits: that is the backpressure that
      // bounds memory while the database is down. The batch must not fail here: it has been processed, and
      // a redelivery would apply it twice.
      for (let attempt = 0; (job.pending() + queued >= maxPending || uncommittedRecords + queued >= maxPending) && !stopping; attempt++) {
        try {
          await checkpointAndTrack();
        } catch (error) {
          if (attempt % 20 === 0) logger.error("checkpoint failed with results pending at the limit; consumption waits for it", { error, pending: uncommittedRecords, attempt });
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
      await checkpointAndTrack();
      logger.info("final checkpoint committed", { positions: [...advanced.values()].length === 0 ? "all" : "partial" });
      await job.close?.();
      jobStopped(job.name);
    },
  };
}
