import { join } from "node:path";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { createEmbeddedBus } from "./embedded/index.ts";
import { createKafkaBus } from "./kafka.ts";
import type { Bus } from "./types.ts";

export type * from "./types.ts";

/** The bus the configuration asks for: Kafka when KAFKA_BROKERS is set, else the embedded log. */
export async function openBus(config: Pick<Config, "kafkaBrokers" | "dataDir" | "ingest"> & Partial<Pick<Config, "busRetention">>, logger: Logger): Promise<Bus> {
  if (config.kafkaBrokers) return createKafkaBus({ brokers: config.kafkaBrokers, logger, produceTimeoutMs: config.ingest.produceTimeoutMs });
  return createEmbeddedBus({ dir: join(config.dataDir, "bus"), logger, retention: config.busRetention });
}
