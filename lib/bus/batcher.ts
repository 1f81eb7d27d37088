import { produceSeconds } from "../metrics.ts";
import { BusUnavailableError } from "../errors.ts";
import type { Bus, OutgoingRecord, ProducedRecord } from "./types.ts";

export interface BatcherOptions {
  /** How long the first record of a batch waits for others to join it. */
  lingerMs: number;
  /** A batch is sent at once when it holds this many records. */
  maxBatchRecords: number;
  /** Bytes waiting or in flight at most; past it `send` fails at once with BusUnavailableError. */
  maxPendingBytes: number;
}

interface Waiting {
  records: OutgoingRecord[];
  resolve: (produced: ProducedRecord[]) => void;
  reject: (error: unknown) => void;
}

/**
 * Coalesces the records of concurrent callers (requests) into bus batches. Each caller's promise
 * resolves with its own records' positions once the whole batch is durable, or rejects: a caller
 * never hears "durable" for a record the bus did not confirm. Memory is bounded by `maxPendingBytes`.
 */
export function createBatcher(bus: Bus, topic: string, options: BatcherOptions) {
  let queue: Waiting[] = [];
  let queuedRecords = 0;
  let pendingBytes = 0;
  let timer: Timer | undefined;

  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (queue.length === 0) return;
    const batch = queue;
    queue = [];
    queuedRecords = 0;
    const started = performance.now();
    bus.produce(topic, batch.flatMap((w) => w.records)).then(
      (produced) => {
        produceSeconds.observe({ topic, outcome: "ok" }, (performance.now() - started) / 1000);
        let at = 0;
        for (const waiting of batch) {
          waiting.resolve(produced.slice(at, at + waiting.records.length));
          at += waiting.records.length;
        }
      },
      (error: unknown) => {
        produceSeconds.observe({ topic, outcome: "failed" }, (performance.now() - started) / 1000);
        for (const waiting of batch) waiting.reject(error);
      },
    );
  };

  return {
    send(records: OutgoingRecord[]): Promise<ProducedRecord[]> {
      if (records.length === 0) return Promise.resolve([]);
      const bytes = records.reduce((sum, r) => sum + r.value.byteLength + r.key.length, 0);
      if (pendingBytes + bytes > options.maxPendingBytes) {
        return Promise.reject(new BusUnavailableError(`ingest buffer full: ${pendingBytes} bytes await the bus`));
      }
      pendingBytes += bytes;
      const done = new Promise<ProducedRecord[]>((resolve, reject) => {
        // A request larger than a batch goes out alone rather than being split across batches.
        if (queuedRecords > 0 && queuedRecords + records.length > options.maxBatchRecords) flush();
        queue.push({ records, resolve, reject });
        queuedRecords += records.length;
        if (queuedRecords >= options.maxBatchRecords) flush();
        else timer ??= setTimeout(flush, options.lingerMs);
      });
      return done.finally(() => {
        pendingBytes -= bytes;
      });
    },
  };
}

export type Batcher = ReturnType<typeof createBatcher>;
