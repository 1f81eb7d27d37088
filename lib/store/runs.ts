import type { Sql, Tx } from "../db/index.ts";
// The gateway names these schemas with `.openapi()`, which only schemas built after @hono/zod-openapi has
// extended zod carry: loading it first keeps that true whichever module (a worker, a test) imports this one first.
import "@hono/zod-openapi";
import { z } from "zod";

export const RunStatusSchema = z.enum(["running", "succeeded", "failed", "dead_letter"]);
export type RunStatus = z.infer<typeof RunStatusSchema>;

export const PipelineRunSchema = z.object({
  run_id: z.number().int(),
  job: z.string(),
  started_at: z.string().describe("ISO-8601, UTC"),
  finished_at: z.string().nullable(),
  status: RunStatusSchema,
  records: z.number().int(),
  error: z.string().nullable(),
});
export type PipelineRun = z.infer<typeof PipelineRunSchema>;

export interface RunRecord {
  job: string;
  startedAt: Date;
  finishedAt: Date;
  status: Exclude<RunStatus, "running">;
  records: number;
  error?: string;
}

/** Records a finished run (a sink flush or a compaction), in `sql`'s transaction when it is one. */
export async function recordRun(sql: Sql | Tx, run: RunRecord): Promise<void> {
  await sql`insert into pipeline_runs (job, started_at, finished_at, status, records, error)
            values (${run.job}, ${run.startedAt}, ${run.finishedAt}, ${run.status}, ${run.records}, ${run.error ?? null})`;
}

/** Runs newest first, keyset-paged on (started_at, run_id). */
export async function listRuns(sql: Sql, filter: { job?: string; status?: RunStatus; limit: number; after?: { startedAt: string; runId: number } }): Promise<PipelineRun[]> {
  const rows = await sql<{ run_id: string; job: string; started_at: Date; finished_at: Date | null; status: RunStatus; records: string; error: string | null }[]>`
    select run_id, job, started_at, finished_at, status, records, error from pipeline_runs
    where true
      ${filter.job ? sql`and job = ${filter.job}` : sql``}
      ${filter.status ? sql`and status = ${filter.status}` : sql``}
      ${filter.after ? sql`and (started_at, run_id) < (${filter.after.startedAt}::timestamptz, ${filter.after.runId})` : sql``}
    order by started_at desc, run_id desc
    limit ${filter.limit}`;
  return rows.map((r) => ({
    run_id: Number(r.run_id),
    job: r.job,
    started_at: r.started_at.toISOString(),
    finished_at: r.finished_at?.toISOString() ?? null,
    status: r.status,
    records: Number(r.records),
    error: r.error,
  }));
}
