import type { Services } from "../lib/services.ts";
import { createApp, openApiInfo } from "./app.ts";

/** The OpenAPI 3.1 document the routes describe, independent of any running service. */
export function openApiDocument() {
  const unused = new Proxy({} as Services, {
    get: () => {
      throw new Error("openApiDocument builds routes only; no service is reached");
    },
  });
  return createApp(unused).getOpenAPI31Document(openApiInfo);
}
