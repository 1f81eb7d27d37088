import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** RFC 9457 problem details, the body of every request-level error. */
export const ProblemSchema = z
  .object({
    type: z.string().openapi({ example: "about:blank" }),
    title: z.string().openapi({ example: "Not Found" }),
    status: z.number().int().openapi({ example: 404 }),
    detail: z.string().openapi({ example: "No route for GET /v1/nothing" }),
    request_id: z.string().optional().openapi({ example: "0193a5c2-7f3e-7b4a-9c1d-2e5f6a7b8c9d" }),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .openapi("Problem");
export type Problem = z.infer<typeof ProblemSchema>;

const titles: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

const PROBLEM_JSON = "application/problem+json";

const problemBody = (status: number, detail: string, requestId: string | undefined, extra: Partial<Problem>): Problem => ({ type: "about:blank", title: titles[status] ?? "Error", status, detail, request_id: requestId, ...extra });

export function problem(c: Context, status: ContentfulStatusCode, detail: string, extra: Partial<Problem> = {}, headers: Record<string, string> = {}) {
  return c.body(JSON.stringify(problemBody(status, detail, c.get("requestId"), extra)), status, { "content-type": PROBLEM_JSON, ...headers });
}

/** The same body outside Hono, for requests refused before a context exists (no usable URL). */
export function problemOutsideApp(status: ContentfulStatusCode, detail: string, requestId: string): Response {
  return new Response(JSON.stringify(problemBody(status, detail, requestId, {})), { status, headers: { "content-type": PROBLEM_JSON, "x-request-id": requestId } });
}

export const problemResponse = (description: string) => ({ description, content: { [PROBLEM_JSON]: { schema: ProblemSchema } } });
