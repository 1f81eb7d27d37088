import { KafkaJSError, Partitioners, type Producer } from "kafkajs";
import { createKafkaClient } from "./kafka-client.ts";
import type { FromProducer, PackedRecords, ToProducer } from "./kafka-produce-protocol.ts";

/**
 * The Kafka producer on its own thread: kafkajs's record encoding costs several microseconds of CPU
 * per record, which would otherwise share the gateway's one JS thread with HTTP and validation.
 *
 * One send is in flight at a time; what arrives meanwhile goes out merged into the next one (kafkajs
 * holds one produce request per broker anyway). That is also what keeps the idempotent producer
 * honest: kafkajs hands a failed request's sequence numbers back even when the broker wrote it, so a
 * later request of the same size could be taken by the broker for a duplicate and acknowledged
 * without being written. After any failure the producer is replaced, and the new one's producer id
 * starts its sequences afresh.
 */
declare const self: { postMessage(message: FromProducer): void; onmessage: ((event: MessageEvent<ToProducer>) => void) | null };
const post = (message: FromProducer) => self.postMessage(message);

/** A merged send stays under the broker's default record batch limit (1 MiB) for any partition. */
const MAX_MERGED_BYTES = 768 * 1024;

type Produce = Extract<ToProducer, { kind: "produce" }>;

let start: Extract<ToProducer, { kind: "start" }> | undefined;
let producer: Promise<Producer> | undefined;
const queue: Produce[] = [];
let sending = false;
let closing: Extract<ToProducer, { kind: "close" }> | undefined;

const connected = () => {
  producer ??= (async () => {
    if (!start) throw new Error("producer thread not started");
    const kafka = createKafkaClient({ brokers: start.brokers, clientId: start.clientId, log: (level, message, fields) => post({ kind: "log", level, message, fields }) });
    const created = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner, retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2_000 } });
    await created.connect();
    return created;
  })();
  return producer;
};

/** Drops the producer (and its producer id); the next send connects a new one. */
const replaceProducer = async () => {
  const old = producer;
  producer = undefined;
  await old?.then((p) => p.disconnect()).catch(() => undefined);
};

const valueOf = (records: PackedRecords, values: Uint8Array, i: number) => {
  const from = i === 0 ? 0 : (records.ends[i - 1] ?? 0);
  return Buffer.from(values.buffer, from, (records.ends[i] ?? 0) - from);
};

/** The queued produces that go out together next: at least one, then while the bytes allow. */
const takeMerged = (): Produce[] => {
  const taken: Produce[] = [];
  let bytes = 0;
  while (queue.length > 0) {
    const next = queue[0] as Produce;
    // The caller has already given up on it and answered that nothing was accepted.
    if (next.deadline !== undefined && Date.now() > next.deadline) {
      queue.shift();
      post({ kind: "failed", id: next.id, message: "timed out before it was sent to Kafka", retriable: true });
      continue;
    }
    const size = next.records.values.byteLength;
    if (taken.length > 0 && bytes + size > MAX_MERGED_BYTES) break;
    queue.shift();
    taken.push(next);
    bytes += size;
  }
  return taken;
};

const send = async (batch: Produce[]) => {
  const messagesByTopic = new Map<string, { key: string; value: Buffer; partition: number; timestamp: string; headers?: Record<string, string> }[]>();
  for (const { topic, records } of batch) {
    const values = new Uint8Array(records.values);
    const messages = messagesByTopic.get(topic) ?? [];
    messagesByTopic.set(topic, messages);
    records.keys.forEach((key, i) => messages.push({ key, value: valueOf(records, values, i), partition: records.partitions[i] ?? 0, timestamp: String(records.timestamps[i]), headers: records.headers?.[i] }));
  }
  const metadata = await (await connected()).sendBatch({ acks: -1, topicMessages: [...messagesByTopic].map(([topic, messages]) => ({ topic, messages })) });
  // Within one request each partition's records are one batch from its base offset, in send order.
  const next = new Map(metadata.map((m) => [`${m.topicName}/${m.partition}`, Number(m.baseOffset)]));
  for (const { id, topic, records } of batch) {
    const baseOffsets: [number, number][] = [];
    for (const partition of new Set(records.partitions)) {
      const key = `${topic}/${partition}`;
      const base = next.get(key);
      if (base === undefined) continue;
      baseOffsets.push([partition, base]);
      next.set(key, base + records.partitions.reduce((n, p) => (p === partition ? n + 1 : n), 0));
    }
    post({ kind: "produced", id, baseOffsets });
  }
};

const drain = async () => {
  if (sending) return;
  sending = true;
  try {
    for (let batch = takeMerged(); batch.length > 0; batch = takeMerged()) {
      try {
        await send(batch);
      } catch (error) {
        await replaceProducer();
        const message = error instanceof Error ? error.message : String(error);
        const retriable = !(error instanceof KafkaJSError) || error.retriable;
        for (const { id } of batch) post({ kind: "failed", id, message, retriable });
      }
    }
  } finally {
    sending = false;
  }
  if (closing) {
    const { id } = closing;
    closing = undefined;
    await replaceProducer();
    post({ kind: "closed", id });
  }
};

self.onmessage = (event: MessageEvent<ToProducer>) => {
  const message = event.data;
  if (message.kind === "start") {
    start = message;
    post({ kind: "started" });
    return;
  }
  if (message.kind === "close") closing = message;
  else queue.push(message);
  void drain();
};
