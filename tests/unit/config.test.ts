import { describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import { loadConfig } from "../../lib/config.ts";
import { ConfigError } from "../../lib/errors.ts";

function failure(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  test("defaults give the embedded mode on port 3000 with ./data", () => {
    const config = loadConfig({});
    expect(config.mode).toBe("embedded");
    expect(config.port).toBe(3000);
    expect(config.dataDir).toBe(resolve("./data"));
    expect(config.lake).toEqual({ kind: "dir", path: resolve("./data/lake") });
    expect(config.apiKeys).toBeUndefined();
  });

  test("KAFKA_BROKERS selects services mode and parses every contract variable", () => {
    const config = loadConfig({
      KAFKA_BROKERS: "127.0.0.1:9092, broker-2:9092",
      DATABASE_URL: "postgres://app@db:5432/pipeline",
      LAKE_URL: "s3://lake-bucket/raw/events/",
      S3_ENDPOINT: "http://minio:9000",
      AWS_ACCESS_KEY_ID: "id",
      AWS_SECRET_ACCESS_KEY: "secret",
      AWS_REGION: "eu-west-1",
      API_KEYS: "k1:ingest+query+admin,dev42:ingest",
      PORT: "8080",
    });
    expect(config.mode).toBe("services");
    expect(config.kafkaBrokers).toEqual(["127.0.0.1:9092", "broker-2:9092"]);
    expect(config.lake).toEqual({ kind: "s3", bucket: "lake-bucket", prefix: "raw/events" });
    expect(config.s3).toEqual({ endpoint: "http://minio:9000", region: "eu-west-1", accessKeyId: "id", secretAccessKey: "secret" });
    expect(config.apiKeys).toEqual([
      { key: "k1", scopes: ["ingest", "query", "admin"] },
      { key: "dev42", scopes: ["ingest"] },
    ]);
    expect(config.port).toBe(8080);
  });

  test("file:// lake URLs resolve to absolute directories", () => {
    expect(loadConfig({ LAKE_URL: "file:///srv/lake" }).lake).toEqual({ kind: "dir", path: "/srv/lake" });
  });

  test("each invalid variable is named with what it expects", () => {
    const error = failure({ PORT: "eighty", LAKE_URL: "ftp://somewhere", API_KEYS: "k1:ingest+root", S3_ENDPOINT: "minio:9000", KAFKA_BROKERS: "nohostport" });
    const byVariable = Object.fromEntries(error.issues.map((i) => [i.variable, i.message]));
    expect(byVariable.PORT).toBe("an integer from 1 to 65535");
    expect(byVariable.LAKE_URL).toContain("s3://bucket/prefix");
    expect(byVariable.API_KEYS).toContain('unknown scope "root"');
    expect(byVariable.S3_ENDPOINT).toContain("http(s)://");
    expect(byVariable.KAFKA_BROKERS).toContain("host:port");
    expect(error.message).toContain("PORT: an integer from 1 to 65535");
  });

  test("the dedupe state spills past DEDUPE_HOT_IDS ids to DEDUPE_SPILL_DIR (DATA_DIR/tmp); 0 keeps it in memory", () => {
    expect(loadConfig({}).dedupeSpill).toEqual({ directory: resolve("./data/tmp"), hotLimit: 262_144 });
    expect(loadConfig({ DATA_DIR: "/srv/pipe", DEDUPE_HOT_IDS: "4096" }).dedupeSpill).toEqual({ directory: "/srv/pipe/tmp", hotLimit: 4_096 });
    expect(loadConfig({ DEDUPE_SPILL_DIR: "/var/tmp/spill" }).dedupeSpill?.directory).toBe("/var/tmp/spill");
    expect(loadConfig({ DEDUPE_HOT_IDS: "0" }).dedupeSpill).toBeUndefined();
    for (const value of ["100", "3000000", "-1"]) expect(failure({ DEDUPE_HOT_IDS: value }).issues[0]?.variable).toBe("DEDUPE_HOT_IDS");
  });

  test("services mode without DATABASE_URL names DATABASE_URL", () => {
    expect(failure({ KAFKA_BROKERS: "localhost:9092" }).issues).toEqual([{ variable: "DATABASE_URL", message: expect.stringContaining("required when KAFKA_BROKERS is set") }]);
  });

  test("half of an S3 credential pair is an error", () => {
    expect(failure({ AWS_ACCESS_KEY_ID: "id" }).issues[0]?.variable).toBe("AWS_SECRET_ACCESS_KEY");
  });

  test("out-of-range ports and empty key lists are rejected; empty strings count as unset", () => {
    expect(failure({ PORT: "70000" }).issues[0]?.variable).toBe("PORT");
    expect(failure({ API_KEYS: " , " }).issues[0]?.variable).toBe("API_KEYS");
    expect(loadConfig({ PORT: "", KAFKA_BROKERS: "" }).mode).toBe("embedded");
  });
});
