import type { Logger } from "../lib/log.ts";
import type { Services } from "../lib/services.ts";
import { type App, createApp } from "./app.ts";
import { problemOutsideApp } from "./problem.ts";
import { dashboardBundle } from "./routes/dashboard.ts";
import { createAlertHub } from "./streams/alert-hub.ts";
import { resolveApiKeys } from "./auth/bootstrap-key.ts";

/** Serves the gateway on the configured port; prints a generated admin key when API_KEYS is unset. */
export async function startGateway(services: Services) {
  const { keys, generated } = await resolveApiKeys(services.config);
  await dashboardBundle(); // a broken dashboard build stops start-up rather than the first page view
  const alertHub = createAlertHub(services.db.sql, { pollMs: services.config.sse.pollMs, logger: services.logger.child({ component: "alert-streams" }) });
  const app = createApp(services, { apiKeys: keys, alertHub });
  const server = Bun.serve({ port: services.config.port, hostname: "0.0.0.0", fetch: gatewayFetch(app, services.logger), idleTimeout: services.config.httpIdleTimeoutS });
  if (generated) {
    // Printed, not logged: the one place a person sees the key they need.
    process.stdout.write(`\nNo API_KEYS set: use this admin key (stored in ${generated.path}):\n\n  ${generated.key}\n\n`);
  }
  return {
    url: `http://localhost:${server.port}`,
    keys,
    /** The admin key generated on first start (API_KEYS unset), for banners. */
    generatedKey: generated?.key,
    /** Ends the alert streams with a final event, then stops accepting and finishes open requests. */
    async stop() {
      alertHub.close();
      await server.stop();
    },
  };
}

/**
 * The app behind Bun.serve. Bun builds a request's URL from its Host header; an HTTP/1.0 request without
 * one (or with one that is not a host) leaves a URL nobody can parse, on which the app would fail. That
 * is the client's mistake: 400 before the app sees it.
 *
 * An answer whose connection closed before it was ready reaches nobody, and is logged as such
 * ("response not delivered", with its status: a 202 there is an ingest the client never heard of).
 * Clients that hang up cause it, and so does Bun.serve itself: it closes the connection, without a byte,
 * when a pipelined request arrives while an asynchronous answer is pending (oven-sh/bun#38128; see
 * README, "Sending events", and bench/repro/pipelining.ts).
 */
export function gatewayFetch(app: App, logger: Logger): (request: Request, server: Bun.Server<undefined>) => Response | Promise<Response> {
  const undelivered = (request: Request, response: Response) => {
    if (!request.signal.aborted) return response;
    const { pathname } = new URL(request.url);
    logger.info("response not delivered: the connection closed first", {
      request_id: response.headers.get("x-request-id") ?? undefined,
      method: request.method,
      path: pathname,
      status: response.status,
      hint: "the client hung up, or pipelined another request behind this one (Bun.serve closes the connection then)",
    });
    return response;
  };
  return (request, server) => {
    if (URL.canParse(request.url)) {
      const answer = app.fetch(request, server);
      // A synchronous answer is written before Bun reads on: only a pending one can lose its connection.
      return answer instanceof Promise ? answer.then((response) => undelivered(request, response)) : answer;
    }
    const requestId = Bun.randomUUIDv7();
    logger.info("request refused: no usable Host header", { request_id: requestId, method: request.method, target: request.url.slice(0, 256), status: 400 });
    return problemOutsideApp(400, "The request needs a valid Host header (HTTP/1.0 requests too).", requestId);
  };
}
