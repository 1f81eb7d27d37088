import { BusUnavailableError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { type FromProducer, packRecords, type ToProducer } from "./kafka-produce-protocol.ts";
import type { OutgoingRecord } from "./types.ts";

/** The main-thread side of the producer thread: one promise per send, correlated by id. */
export function startProducerThread(options: { brokers: string[]; clientId: string; logger: Logger }) {
  const worker = new Worker(new URL("./kafka-producer-thread.ts", import.meta.url).href);
  const pending = new Map<number, { resolve: (value: [number, number][]) => void; reject: (error: unknown) => void }>();
  let nextId = 1;
  let closed = false;

  worker.onmessage = (event: MessageEvent<FromProducer>) => {
    const message = event.data;
    if (message.kind === "log") {
      options.logger[message.level](message.message, message.fields);
      return;
    }
    if (message.kind === "started") return;
    const waiting = pending.get(message.id);
    pending.delete(message.id);
    if (!waiting) return;
    if (message.kind === "produced") waiting.resolve(message.baseOffsets);
    else if (message.kind === "closed") waiting.resolve([]);
    else waiting.reject(new BusUnavailableError(message.message, { retriable: message.retriable }));
  };
  worker.onerror = (event) => {
    options.logger.error("Kafka producer thread failed", { error: event.message });
    for (const waiting of pending.values()) waiting.reject(new BusUnavailableError(`producer thread failed: ${event.message}`));
    pending.clear();
  };
  const post = (message: ToProducer, transfer: ArrayBuffer[] = []) => worker.postMessage(message, transfer);
  post({ kind: "start", brokers: options.brokers, clientId: options.clientId });

  const call = (make: (id: number) => { message: ToProducer; transfer?: ArrayBuffer[] }) =>
    new Promise<[number, number][]>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      const { message, transfer } = make(id);
      post(message, transfer);
    });

  return {
    /** Resolves with the base offset per partition once Kafka acknowledged every record (acks=all). */
    send(topic: string, records: OutgoingRecord[], partitions: number[], deadline?: number): Promise<[number, number][]> {
      if (closed) return Promise.reject(new BusUnavailableError("the Kafka bus is closed", { retriable: false }));
      const { packed, transfer } = packRecords(records, partitions, Date.now());
      return call((id) => ({ message: { kind: "produce", id, topic, records: packed, ...(deadline === undefined ? {} : { deadline }) }, transfer }));
    },
    async close() {
      if (closed) return;
      closed = true;
      await call((id) => ({ message: { kind: "close", id } }));
      worker.terminate();
    },
  };
}
