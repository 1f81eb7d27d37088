import { KafkaJSError, Partitioners, type Producer } from "kafkajs";
import { createKafkaClient } from "./kafka-client.ts";
import type { FromProducer, ToProducer } from "./kafka-produce-protocol.ts";

/**
 * The Kafka producer on its own thread: kafkajs's record encoding costs several microseconds of CPU
 * per record, which would otherwise share the gateway's one JS thread with HTTP and validation.
 */
declare const self: { postMessage(message: FromProducer): void; onmessage: ((event: MessageEvent<ToProducer>) => void) | null };
const post = (message: FromProducer) => self.postMessage(message);
let producer: Producer | undefined;
let connecting: Promise<Producer> | undefined;
let start: Extract<ToProducer, { kind: "start" }> | undefined;

const connected = () => {
  connecting ??= (async () => {
    if (!start) throw new Error("producer thread not started");
    const kafka = createKafkaClient({ brokers: start.brokers, clientId: start.clientId, log: (level, message, fields) => post({ kind: "log", level, message, fields }) });
    const created = kafka.producer({ idempotent: true, maxInFlightRequests: 5, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner, retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2_000 } });
    await created.connect();
    producer = created;
    return created;
  })().catch((error: unknown) => {
    connecting = undefined;
    throw error;
  });
  return connecting;
};

self.onmessage = async (event: MessageEvent<ToProducer>) => {
  const message = event.data;
  if (message.kind === "start") {
    start = message;
    post({ kind: "started" });
    return;
  }
  if (message.kind === "close") {
    await producer?.disconnect().catch(() => undefined);
    post({ kind: "closed", id: message.id });
    return;
  }
  const { records } = message;
  const values = new Uint8Array(records.values);
  try {
    const metadata = await (await connected()).send({
      topic: message.topic,
      acks: -1,
      messages: records.keys.map((key, i) => ({
        key,
        value: Buffer.from(values.buffer, i === 0 ? 0 : (records.ends[i - 1] ?? 0), (records.ends[i] ?? 0) - (i === 0 ? 0 : (records.ends[i - 1] ?? 0))),
        partition: records.partitions[i],
        timestamp: String(records.timestamps[i]),
        headers: records.headers?.[i],
      })),
    });
    post({ kind: "produced", id: message.id, baseOffsets: metadata.map((m) => [m.partition, Number(m.baseOffset)]) });
  } catch (error) {
    post({ kind: "failed", id: message.id, message: error instanceof Error ? error.message : String(error), retriable: !(error instanceof KafkaJSError) || error.retriable });
  }
};
