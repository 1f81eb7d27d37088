import { loadConfig } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { openServices, type Services } from "../../lib/services.ts";
import { freshDatabase } from "./pg.ts";
import { services as realServices, uniqueName } from "./services.ts";

/**
 * The two ways to run the pipeline's services in a suite: embedded (file bus, PGlite) in a temporary
 * directory, and services mode on the real Kafka and a fresh database on the real Postgres, with topics
 * of its own. Each returns the open services and what to drop afterwards.
 */
export type Setup = (dir: string) => Promise<{ services: Services; drop: () => Promise<void> }>;

export function serviceSetups(env: Record<string, string> = {}): Record<"embedded" | "kafka", Setup> {
  const quiet = createLogger({ test: "setup" }, () => undefined);
  return {
    embedded: async (dir) => ({ services: await openServices(loadConfig({ DATA_DIR: dir, ...env }), quiet), drop: async () => undefined }),
    kafka: async (dir) => {
      const database = await freshDatabase();
      const config = loadConfig({ DATA_DIR: dir, KAFKA_BROKERS: realServices().kafkaBrokers.join(","), DATABASE_URL: database.url, TOPIC_PREFIX: `${uniqueName("t")}.`, ...env });
      return { services: await openServices(config, quiet), drop: database.drop };
    },
  };
}
