import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import postgres, { type Sql } from "postgres";

/**
 * Connection settings: KAFKA_BROKERS and DATABASE_URL from the environment when both are set (docker
 * compose), else those of the services `bash scripts/services.sh up` started (its services.env).
 */
export function serviceEnv(): Record<string, string> {
  if (process.env.KAFKA_BROKERS && process.env.DATABASE_URL) return { KAFKA_BROKERS: process.env.KAFKA_BROKERS, DATABASE_URL: process.env.DATABASE_URL };
  const file = join(process.env.DEVPIPE_SERVICES_DIR ?? "/tmp/devpipe-services", "services.env");
  if (!existsSync(file)) throw new Error("no services: run `bash scripts/services.sh up` first (or set KAFKA_BROKERS and DATABASE_URL)");
  return Object.fromEntries(readFileSync(file, "utf8").split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
}

/** A database of its own for one benchmark run on the real Postgres; `drop()` removes it. */
export async function benchDatabase(prefix: string) {
  const env = serviceEnv();
  const name = `${prefix}_${Date.now().toString(36)}`;
  const admin = postgres(env.DATABASE_URL ?? "", { max: 1, onnotice: () => undefined });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(env.DATABASE_URL ?? "");
  url.pathname = `/${name}`;
  return {
    name,
    env,
    url: url.toString(),
    async drop() {
      await admin.unsafe(`drop database ${name} with (force)`);
      await admin.end();
    },
  };
}

/** Seconds from `since` (a performance.now() reading) until `job` has committed `total` records of `topic`. */
export async function drained(sql: Sql, job: string, topic: string, total: number, since: number): Promise<number> {
  for (;;) {
    const [row] = await sql<{ n: string }[]>`select coalesce(sum(next_offset), 0)::bigint as n from job_offsets where job = ${job} and topic = ${topic}`;
    if (Number(row?.n ?? 0) >= total) return (performance.now() - since) / 1000;
    await Bun.sleep(20);
  }
}

/**
 * The libs dir of the Kafka broker `scripts/services.sh up` runs (its jars, kafka-tools among them: Kafka's own
 * ProducerPerformance for bench/ingest.ts), with its version. Undefined when that broker was not started by the script.
 */
export function kafkaInstall(): { version: string; libs: string } | undefined {
  const dir = join(process.env.DEVPIPE_SERVICES_DIR ?? "/tmp/devpipe-services", "kafka");
  if (!existsSync(join(dir, "libs")) || !existsSync(join(dir, "version"))) return undefined;
  const libs = readFileSync(join(dir, "libs"), "utf8").trim();
  return existsSync(libs) ? { version: readFileSync(join(dir, "version"), "utf8").trim(), libs } : undefined;
}
