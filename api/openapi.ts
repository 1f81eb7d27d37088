import { loadConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import type { Services } from "../lib/services.ts";
import { topicNames } from "../lib/topics.ts";
import { createApp } from "./app.ts";
import { openApiDocumentOf } from "./openapi-document.ts";

/** Stands in for a connection the document never uses: any use of it throws. */
const unreachable = <T extends object>(name: string) =>
  new Proxy({} as T, {
    get: (_target, property) => {
      throw new Error(`openApiDocument builds routes only; ${name}.${String(property)} was reached`);
    },
  });

/** The OpenAPI 3.1 document the routes describe, independent of any running service. */
export function openApiDocument() {
  const services: Services = {
    config: loadConfig({}),
    logger: createLogger({}, () => undefined),
    bus: unreachable("bus"),
    db: unreachable("db"),
    lake: unreachable("lake"),
    topics: topicNames(),
  };
  return openApiDocumentOf(createApp(services, { apiKeys: [] }));
}
