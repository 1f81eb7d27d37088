import { OpenAPIHono } from "@hono/zod-openapi";
import { createBatcher } from "../lib/bus/batcher.ts";
import { lakeCacheDir, localFiles } from "../lib/lake/local-files.ts";
import { createLakeReader, type LakeReader, readerTempDir } from "../lib/lake/reader.ts";
import { RequestAbortedError } from "../lib/errors.ts";
import type { Services } from "../lib/services.ts";
import { type ApiKey, createKeyring } from "./auth/keyring.ts";
import type { AppEnv } from "./env.ts";
import { notFoundOrNotAllowed } from "./middleware/method-not-allowed.ts";
import { requestContext } from "./middleware/request-context.ts";
import { storableQuery } from "./middleware/storable-query.ts";
import { openApiDocumentOf } from "./openapi-document.ts";
import { problem } from "./problem.ts";
import { type AlertHub, createAlertHub } from "./streams/alert-hub.ts";
import { registerListAggregates } from "./routes/aggregates/list.ts";
import { registerAlerts } from "./routes/alerts/index.ts";
import { registerDims } from "./routes/dims/index.ts";
import { registerDashboard } from "./routes/dashboard.ts";
import { registerDocs } from "./routes/docs.ts";
import { registerIngest } from "./routes/events/ingest.ts";
import { registerHealth } from "./routes/health.ts";
import { registerLakeEvents } from "./routes/lake/events.ts";
import { registerLakeQuery } from "./routes/lake/query.ts";
import { registerMetrics } from "./routes/metrics.ts";
import { registerListRuns } from "./routes/runs/list.ts";


export interface AppOptions {
  apiKeys: ApiKey[];
  /** The alert streams' hub; the server passes its own so it can end the streams on shutdown. */
  alertHub?: AlertHub;
}

/** The gateway, built around already-open services so tests can call `app.request()` in-process. */
export function createApp(services: Services, options: AppOptions) {
  const app = new OpenAPIHono<AppEnv>();
  const keyring = createKeyring(options.apiKeys);
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer", description: "An API key from API_KEYS" });
  app.use(requestContext(services));
  app.use(storableQuery());
  registerHealth(app);
  registerMetrics(app, services);
  registerDocs(app);
  registerDashboard(app);
  const { ingest } = services.config;
  const batcher = createBatcher(services.bus, services.topics.raw, { lingerMs: ingest.lingerMs, maxBatchRecords: ingest.maxBatchRecords, maxPendingBytes: ingest.maxPendingBytes });
  registerIngest(app, { keyring, batcher });
  registerDims(app, keyring);
  let alertHub = options.alertHub;
  const hub = () => {
    alertHub ??= createAlertHub(services.db.sql, { pollMs: services.config.sse.pollMs, logger: services.logger });
    return alertHub;
  };
  registerAlerts(app, { keyring, hub });
  registerListAggregates(app, keyring);
  const { dataDir, query } = services.config;
  let lakeReader: LakeReader | undefined;
  const reader = () => {
    lakeReader ??= createLakeReader({ store: services.lake, files: localFiles(services.lake, lakeCacheDir(dataDir)), tempDir: readerTempDir(dataDir), ...query });
    return lakeReader;
  };
  registerLakeEvents(app, { keyring, reader });
  registerLakeQuery(app, { keyring, reader });
  registerListRuns(app, keyring);
  let document: ReturnType<typeof openApiDocumentOf> | undefined;
  app.get("/openapi.json", (c) => {
    document ??= openApiDocumentOf(app);
    return c.json(document);
  });
  app.notFound(notFoundOrNotAllowed(app));
  app.onError((error, c) => {
    // A client that went away mid-body is not a server failure; the answer reaches nobody.
    if (error instanceof RequestAbortedError || (c.req.raw.signal.aborted && error instanceof DOMException && error.name === "AbortError")) {
      c.get("log").info("request aborted", { method: c.req.method, path: c.req.path, reason: error.message });
      return problem(c, 400, "The client closed the connection before the whole request arrived.");
    }
    c.get("log").error("unhandled error", { error });
    return problem(c, 500, "The server failed to handle this request; it has been logged with the request id.");
  });
  return app;
}

export type App = ReturnType<typeof createApp>;
