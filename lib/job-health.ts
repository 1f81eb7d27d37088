import { checkpointAge, registry } from "./metrics.ts";

/**
 * How the checkpoints of the jobs hosted by this process are going: /readyz reports a job whose
 * checkpoints have failed for too long, and /metrics the age of each job's last successful one.
 */
interface CheckpointHealth {
  lastSuccessAt: number;
  /** When the current run of failures began; null while checkpoints succeed. */
  failingSince: number | null;
  lastError: string | null;
}

const health = new Map<string, CheckpointHealth>();

export function checkpointStarted(job: string, now = Date.now()) {
  if (!health.has(job)) health.set(job, { lastSuccessAt: now, failingSince: null, lastError: null });
}

export function checkpointSucceeded(job: string, now = Date.now()) {
  health.set(job, { lastSuccessAt: now, failingSince: null, lastError: null });
}

export function checkpointFailedAt(job: string, error: unknown, now = Date.now()) {
  const current = health.get(job) ?? { lastSuccessAt: now, failingSince: null, lastError: null };
  health.set(job, { ...current, failingSince: current.failingSince ?? now, lastError: error instanceof Error ? error.message : String(error) });
}

/** Jobs of this process whose checkpoints have failed for longer than `stallMs`, with why. */
export function failingJobs(stallMs: number, now = Date.now()): { job: string; failingForMs: number; error: string }[] {
  return [...health.entries()].flatMap(([job, h]) => (h.failingSince !== null && now - h.failingSince > stallMs ? [{ job, failingForMs: now - h.failingSince, error: h.lastError ?? "unknown" }] : []));
}

/** Forgets a job (it stopped in this process). */
export function jobStopped(job: string) {
  health.delete(job);
}

registry.collect(async () => {
  const now = Date.now();
  checkpointAge.replace([...health.entries()].map(([job, h]) => ({ labels: { job }, value: (now - h.lastSuccessAt) / 1000 })));
});
