import type { DeliveredRecord } from "../lib/bus/types.ts";
import type { Tx } from "../lib/db/index.ts";
import type { Logger } from "../lib/log.ts";
import { deadRecords } from "../lib/metrics.ts";
import type { Services } from "../lib/services.ts";
import { recordRun } from "../lib/store/runs.ts";

/** A record a job's sinks refuse, and why. */
export interface DeadLetter {
  record: DeliveredRecord;
  reason: string;
}

/** How a job hands over a record it cannot use; it reaches events.dead with the next checkpoint. */
export type DeadLetterSink = (record: DeliveredRecord, reason: string) => void;

/** Headers a dead letter carries besides the original record's own. */
export const DEAD_HEADERS = { job: "devpipe-dead-job", error: "devpipe-dead-error", source: "devpipe-dead-source" } as const;

const MAX_REASON = 1_000;

/**
 * events.dead for one job: the original key, value and headers, plus the job, the error and the
 * source position (`topic:partition:offset`, so a reader can drop the repeat a crash between produce
 * and commit may leave). Each batch of letters is also a `dead_letter` run in the runs log.
 */
export function deadLetterSink(services: Pick<Services, "bus" | "topics">, job: string, logger: Logger) {
  return {
    /** Inside the checkpoint's transaction: the letters are durable in the bus before it commits. */
    async send(tx: Tx, letters: DeadLetter[]) {
      if (letters.length === 0) return;
      const now = new Date();
      await services.bus.produce(
        services.topics.dead,
        letters.map(({ record, reason }) => ({
          key: record.key,
          value: record.value,
          timestamp: record.timestamp,
          headers: { ...record.headers, [DEAD_HEADERS.job]: job, [DEAD_HEADERS.error]: reason.slice(0, MAX_REASON), [DEAD_HEADERS.source]: `${record.topic}:${record.partition}:${record.offset}` },
        })),
      );
      const [first] = letters;
      const where = first ? `${first.record.topic}:${first.record.partition}:${first.record.offset}` : "";
      await recordRun(tx, { job, startedAt: now, finishedAt: now, status: "dead_letter", records: letters.length, error: `moved to events.dead (first at ${where}): ${first?.reason.slice(0, MAX_REASON) ?? ""}` });
    },
    /** After the commit: counted and logged once per record. */
    committed(letters: DeadLetter[]) {
      if (letters.length === 0) return;
      deadRecords.inc({ job }, letters.length);
      for (const { record, reason } of letters) logger.error("record moved to events.dead", { topic: record.topic, partition: record.partition, offset: record.offset, reason: reason.slice(0, MAX_REASON) });
    },
  };
}
