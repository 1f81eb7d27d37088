import { freshDatabase } from "./pg.ts";
import { freePort, startProcess } from "./process.ts";
import { services, uniqueName } from "./services.ts";
import { waitFor } from "./wait.ts";

export const GATEWAY_KEY = "e2e-ingest-key";

/** The gateway as its own process in services mode on the real Kafka, Postgres and S3. */
export async function startServicesGateway(dataDir: string, extraEnv: Record<string, string> = {}) {
  const database = await freshDatabase();
  const { kafkaBrokers, s3 } = services();
  const port = freePort();
  const app = startProcess(["api"], {
    PORT: String(port),
    DATA_DIR: dataDir,
    KAFKA_BROKERS: kafkaBrokers.join(","),
    DATABASE_URL: database.url,
    LAKE_URL: `s3://${s3.bucket}/${uniqueName("e2e")}`,
    S3_ENDPOINT: s3.endpoint,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: s3.region,
    API_KEYS: `${GATEWAY_KEY}:ingest+query+admin`,
    ...extraEnv,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, { timeoutMs: 60_000, intervalMs: 100, what: `gateway ready (output: ${app.output().slice(-500)})` });
  return {
    url,
    app,
    async stop() {
      app.child.kill("SIGTERM");
      const code = await app.exited();
      await database.drop();
      return code;
    },
  };
}
