import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Connection settings of the real services the integration suites use: taken from the environment
 * when given (docker compose, CI), else from the env file `scripts/services.sh up` writes.
 * A suite that needs them and cannot find them fails; it is never skipped.
 */
export interface ServiceSettings {
  /** The current Kafka line (4.2 with scripts/services.sh). */
  kafkaBrokers: string[];
  /** A Kafka 3.9 broker, when one is given (KAFKA_BROKERS_39; `scripts/services.sh up --with-kafka39`): the bus contract suite runs against it too. */
  kafkaBrokers39?: string[];
  databaseUrl: string;
  s3: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string; bucket: string };
}

const REQUIRED = ["KAFKA_BROKERS", "DATABASE_URL", "S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "LAKE_URL"] as const;

function fromEnvFile(): Record<string, string> {
  const dir = process.env.DEVPIPE_SERVICES_DIR ?? join(process.env.TMPDIR ?? "/tmp", "devpipe-services");
  const path = join(dir, "services.env");
  if (!existsSync(path)) return {};
  return Object.fromEntries(
    readFileSync(path, "utf8")
      .split("\n")
      .filter((line) => line.includes("="))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  );
}

let cached: ServiceSettings | undefined;

export function services(): ServiceSettings {
  if (cached) return cached;
  const env = REQUIRED.every((name) => process.env[name]) ? process.env : fromEnvFile();
  const missing = REQUIRED.filter((name) => !env[name]);
  if (missing.length > 0) {
    throw new Error(`integration tests need real services; missing ${missing.join(", ")}. Start them with: bash scripts/services.sh up (or run: bun run test)`);
  }
  const value = (name: (typeof REQUIRED)[number]) => env[name] ?? "";
  const bucket = /^s3:\/\/([^/]+)/.exec(value("LAKE_URL"))?.[1];
  if (!bucket) throw new Error(`LAKE_URL must be s3://bucket/prefix for the integration suites, got ${value("LAKE_URL")}`);
  cached = {
    kafkaBrokers: value("KAFKA_BROKERS").split(","),
    kafkaBrokers39: (process.env.KAFKA_BROKERS_39 ?? env.KAFKA_BROKERS_39)?.split(","),
    databaseUrl: value("DATABASE_URL"),
    s3: { endpoint: value("S3_ENDPOINT"), region: env.AWS_REGION ?? "us-east-1", accessKeyId: value("AWS_ACCESS_KEY_ID"), secretAccessKey: value("AWS_SECRET_ACCESS_KEY"), bucket },
  };
  return cached;
}

/** A name no other test run uses: topics, groups, schemas, prefixes. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
}
