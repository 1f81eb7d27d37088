import type { Logger } from "../lib/log.ts";
import type { Services } from "../lib/services.ts";

/** What every handler can read from the context: `c.get("services")`, `c.get("requestId")`, `c.get("log")`. */
export interface AppEnv {
  Variables: {
    services: Services;
    requestId: string;
    log: Logger;
  };
}
