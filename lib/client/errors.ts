import type { Problem } from "./types.ts";
import { retryAfterMs } from "./wait.ts";

/** The gateway answered with an error status; `problem` is its problem+json body (RFC 9457). */
export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly status: number;
  readonly problem: Problem;
  /** The answer's Retry-After, in ms, when it had one (429, 503). */
  readonly retryAfterMs: number | undefined;

  constructor(problem: Problem, retryAfterMs?: number) {
    super(`${problem.status} ${problem.title}: ${problem.detail}`);
    this.status = problem.status;
    this.problem = problem;
    this.retryAfterMs = retryAfterMs;
  }

  get detail(): string {
    return this.problem.detail;
  }

  /** The parameters or fields at fault, as the problem's `errors` name them (400s on query parameters). */
  get fieldErrors(): { path: string; message: string }[] {
    return this.problem.errors ?? [];
  }
}

/** No answer at all: the connection failed, was cut, or the per-attempt timeout ran out. */
export class ConnectionError extends Error {
  override readonly name = "ConnectionError";

  constructor(url: string, cause: unknown) {
    super(`no answer from ${url}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** The answer's problem+json as an `ApiError`; a body that is not one (a proxy's page) becomes its detail. */
export async function apiErrorOf(response: Response, now = Date.now()): Promise<ApiError> {
  const text = await response.text().catch(() => "");
  return new ApiError(problemOf(response.status, response.statusText, text), retryAfterMs(response.headers.get("retry-after"), now));
}

export function problemOf(status: number, statusText: string, text: string): Problem {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const fallback: Problem = { type: "about:blank", title: statusText || "Error", status, detail: text.slice(0, 1_000) || statusText || `HTTP ${status}` };
  if (typeof body !== "object" || body === null) return fallback;
  const fields = body as Partial<Record<keyof Problem, unknown>>;
  return {
    type: typeof fields.type === "string" ? fields.type : fallback.type,
    title: typeof fields.title === "string" ? fields.title : fallback.title,
    status,
    detail: typeof fields.detail === "string" ? fields.detail : fallback.detail,
    ...(typeof fields.request_id === "string" ? { request_id: fields.request_id } : {}),
    ...(Array.isArray(fields.errors) ? { errors: (fields.errors as unknown[]).filter(isFieldError) } : {}),
  };
}

const isFieldError = (value: unknown): value is { path: string; message: string } =>
  typeof value === "object" && value !== null && typeof (value as { path?: unknown }).path === "string" && typeof (value as { message?: unknown }).message === "string";
