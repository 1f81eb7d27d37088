import type { Sample } from "./metrics-text.ts";

/**
 * What the dashboard reads from one /metrics scrape. The names are the gateway's: the process registry
 * (lib/metrics.ts) and the series api/routes/metrics.ts collects at scrape time from the runs log, the
 * window progress and the jobs' committed positions.
 */
export const METRIC = {
  ingested: "devpipe_ingest_events_total",
  lag: "devpipe_consumer_lag",
  /** From the windows job's progress table (every process). */
  late: "devpipe_late_events",
  /** This process's counter: the fallback when the progress-table series is absent. */
  lateCounter: "devpipe_windows_late_events_total",
  /** From the runs log (`dead_letter` runs), so it counts every process's dead letters. */
  deadLettered: "devpipe_dead_lettered_records",
  /** This process's counter: the fallback when the runs-log series is absent. */
  deadRecords: "devpipe_dead_records_total",
  checkpointFailures: "devpipe_checkpoint_failures_total",
  checkpointAge: "devpipe_checkpoint_age_seconds",
} as const;

const sumBy = (samples: Sample[], name: string, label: string) => {
  const sums = new Map<string, number>();
  for (const s of samples) if (s.name === name) sums.set(s.labels[label] ?? "", (sums.get(s.labels[label] ?? "") ?? 0) + s.value);
  return sums;
};
const total = (samples: Sample[], name: string) => samples.reduce((sum, s) => (s.name === name ? sum + s.value : sum), 0);

/** Accepted events so far, by event type (a counter: rates come from two scrapes). */
export function acceptedByType(samples: Sample[]): Map<string, number> {
  return sumBy(
    samples.filter((s) => s.labels.status === "accepted"),
    METRIC.ingested,
    "type",
  );
}

/** Events per second by type between two scrapes `seconds` apart; a counter that went back (a restart) counts from 0. */
export function ratesBetween(previous: Map<string, number>, current: Map<string, number>, seconds: number): Map<string, number> {
  const rates = new Map<string, number>();
  if (seconds <= 0) return rates;
  for (const [type, now] of current) {
    const before = previous.get(type) ?? 0;
    rates.set(type, (now >= before ? now - before : now) / seconds);
  }
  return rates;
}

export interface JobLag {
  /** The most records any one input partition of the job is behind. */
  worst: number;
  total: number;
  partitions: number;
}

/** Each job's lag (jobs that never committed a position are absent from /metrics, so from here too). */
export function lagByJob(samples: Sample[]): Map<string, JobLag> {
  const jobs = new Map<string, JobLag>();
  for (const s of samples) {
    if (s.name !== METRIC.lag) continue;
    const job = s.labels.job ?? "";
    const entry = jobs.get(job) ?? { worst: 0, total: 0, partitions: 0 };
    jobs.set(job, { worst: Math.max(entry.worst, s.value), total: entry.total + s.value, partitions: entry.partitions + 1 });
  }
  return jobs;
}

export interface Health {
  lateEvents: number;
  deadLettered: number;
  /** Checkpoint failures this gateway's process has counted, by job. */
  checkpointFailures: Map<string, number>;
  /** Seconds since each job's last successful checkpoint (jobs hosted by this process). */
  checkpointAge: Map<string, number>;
}

export function healthOf(samples: Sample[]): Health {
  const has = (name: string) => samples.some((s) => s.name === name);
  return {
    lateEvents: total(samples, has(METRIC.late) ? METRIC.late : METRIC.lateCounter),
    deadLettered: total(samples, has(METRIC.deadLettered) ? METRIC.deadLettered : METRIC.deadRecords),
    checkpointFailures: sumBy(samples, METRIC.checkpointFailures, "job"),
    checkpointAge: sumBy(samples, METRIC.checkpointAge, "job"),
  };
}
