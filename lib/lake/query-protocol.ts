import { z } from "zod";

/** Messages between the gateway and a query process (query-pool.ts ↔ query-process.ts), over Bun's IPC. */

/** Parse `sql` and check its tree against the allow-list; `tables` are the names it may read. */
export const CheckJob = z.object({ kind: z.literal("check"), id: z.number(), sql: z.string(), tables: z.array(z.string()) });

/** Set up the views (`setup`: CREATE VIEW statements), lock the database down, run `sql` and build the body. */
export const RunJob = z.object({
  kind: z.literal("run"),
  id: z.number(),
  setup: z.array(z.string()),
  /** The only directories DuckDB may read once locked: the lake's files. */
  allowedDirectories: z.array(z.string()),
  sql: z.string(),
  params: z.array(z.union([z.string(), z.number()])),
  /** `table`: {columns, rows, truncated}; `items`: {items} from a single column of JSON texts. */
  format: z.enum(["table", "items"]),
  maxRows: z.number().int().positive(),
  maxBytes: z.number().int().positive(),
});

/** Stop job `id`, whatever step it is at (including one not started yet). */
export const CancelJob = z.object({ kind: z.literal("cancel"), id: z.number() });

export const ToProcess = z.discriminatedUnion("kind", [CheckJob, RunJob, CancelJob]);
export type ToProcess = z.infer<typeof ToProcess>;
export type Job = z.infer<typeof CheckJob> | z.infer<typeof RunJob>;
/** A job before the pool numbers it. */
export type JobRequest = Omit<z.infer<typeof CheckJob>, "id"> | Omit<z.infer<typeof RunJob>, "id">;

const rss = z.number().nonnegative();

export const FromProcess = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("ready") }),
  z.object({ kind: z.literal("checked"), id: z.number(), tables: z.array(z.string()), rss }),
  z.object({ kind: z.literal("result"), id: z.number(), body: z.instanceof(Uint8Array), rows: z.number(), truncated: z.boolean(), rss }),
  /** `invalid`: the query's own fault (refused, or a DuckDB error); otherwise the process failed it. */
  z.object({ kind: z.literal("failed"), id: z.number(), message: z.string(), invalid: z.boolean(), rss }),
]);
export type FromProcess = z.infer<typeof FromProcess>;
export type JobReply = Exclude<FromProcess, { kind: "ready" }>;
