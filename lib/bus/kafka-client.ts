import { Kafka, type LogEntry, logLevel } from "kafkajs";

export type KafkaLogLevel = "error" | "warn" | "info" | "debug";
export type KafkaLogSink = (level: KafkaLogLevel, message: string, fields: Record<string, unknown>) => void;

const levels: Record<number, KafkaLogLevel> = { [logLevel.ERROR]: "error", [logLevel.WARN]: "warn", [logLevel.INFO]: "info", [logLevel.DEBUG]: "debug" };

/** The one kafkajs client configuration, for the bus and for its producer thread alike. */
export function createKafkaClient(options: { brokers: string[]; clientId: string; log: KafkaLogSink }): Kafka {
  return new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    connectionTimeout: 3_000,
    requestTimeout: 15_000,
    // kafkajs retries what the protocol marks retriable, with jittered exponential backoff.
    retry: { initialRetryTime: 100, maxRetryTime: 5_000, retries: 6, factor: 0.2, multiplier: 2 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...fields } = entry;
        // kafkajs logs every error response ("Response Heartbeat(...)") before its retry logic handles it:
        // coordinator moves and rebalances are routine, not errors of ours.
        const routine = level === logLevel.ERROR && message.startsWith("Response ");
        options.log(routine ? "warn" : (levels[level] ?? "info"), message, fields);
      },
  });
}
