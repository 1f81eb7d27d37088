import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "./env.ts";

export const openApiInfo = {
  openapi: "3.1.0",
  info: {
    title: "devpipe",
    version: "0.1.0",
    description: "Real-time device-event pipeline: ingest device events, query alerts, aggregates and the Parquet lake. Every `/v1` endpoint needs `Authorization: Bearer <key>`.",
  },
} as const;

type Document = ReturnType<OpenAPIHono<AppEnv>["getOpenAPI31Document"]>;

const EMPTY_MEANS_ABSENT = "An empty value is the same as leaving the parameter out.";

/**
 * The OpenAPI 3.1 document of the app's routes. Every optional query parameter declares
 * `allowEmptyValue`: the server reads `?to=` as no `to` at all (forms and query builders send empty
 * fields), and the document says so rather than promising a 400.
 */
export function openApiDocumentOf(app: OpenAPIHono<AppEnv>): Document {
  const document = app.getOpenAPI31Document(openApiInfo);
  for (const item of Object.values(document.paths ?? {})) {
    for (const operation of [item.get, item.put, item.post, item.delete, item.patch]) {
      for (const parameter of operation?.parameters ?? []) {
        if (!("in" in parameter) || parameter.in !== "query" || parameter.required) continue;
        parameter.allowEmptyValue = true;
        parameter.description = parameter.description ? `${parameter.description}. ${EMPTY_MEANS_ABSENT}` : EMPTY_MEANS_ABSENT;
      }
    }
  }
  return document;
}
