import type { Logger } from "../lib/log.ts";
import type { Services } from "../lib/services.ts";

/** What every handler can read from the context: `c.get("services")`, `c.get("requestId")`, `c.get("log")`, and after requireScope `c.get("apiKey")`. */
export interface AppEnv {
  /** Under Bun.serve, the server (absent for in-process `app.request`). */
  Bindings: { timeout?(request: Request, seconds: number): void } | undefined;
  Variables: {
    services: Services;
    requestId: string;
    log: Logger;
    /** The API key the request authenticated with (set by requireScope), for per-key limits. */
    apiKey: string;
  };
}
