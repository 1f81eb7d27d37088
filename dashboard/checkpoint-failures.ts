/**
 * "Last failed checkpoint": the newest of two sources. The runs log (`GET /v1/pipeline/runs?status=failed`)
 * has when, which job and the error for sinks that log their flushes (lake, compaction); the
 * `devpipe_checkpoint_failures_total` counter covers every job of the gateway's process but carries no
 * time or error, so a rise between two scrapes is dated by the scrape that saw it.
 */
export interface FailedCheckpoint {
  at: number;
  job: string;
  error: string;
}

export interface FailedRun {
  job: string;
  started_at: string;
  finished_at: string | null;
  error: string | null;
}

export function fromRun(run: FailedRun | undefined): FailedCheckpoint | undefined {
  if (!run) return undefined;
  return { at: Date.parse(run.finished_at ?? run.started_at), job: run.job, error: run.error ?? "(no error recorded)" };
}

/** Watches the counter across scrapes; `seen` is the newest rise observed. */
export class FailureCounterWatch {
  private previous: Map<string, number> | undefined;
  seen: FailedCheckpoint | undefined;

  observe(counts: Map<string, number>, now: number) {
    if (this.previous) {
      for (const [job, n] of counts) {
        if (n > (this.previous.get(job) ?? 0)) this.seen = { at: now, job, error: `checkpoint failed ${n - (this.previous.get(job) ?? 0)}× (the error is in the job's log)` };
      }
    }
    this.previous = counts;
  }
}

export function newest(...failures: (FailedCheckpoint | undefined)[]): FailedCheckpoint | undefined {
  return failures.reduce<FailedCheckpoint | undefined>((best, f) => (f && (!best || f.at > best.at) ? f : best), undefined);
}
