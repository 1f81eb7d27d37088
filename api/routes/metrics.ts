import type { OpenAPIHono } from "@hono/zod-openapi";
import { PROMETHEUS_CONTENT_TYPE, Registry, registry } from "../../lib/metrics.ts";
import type { Services } from "../../lib/services.ts";
import { jobInputs } from "../../lib/topics.ts";
import type { AppEnv } from "../env.ts";

/**
 * GET /metrics (Prometheus text). Besides what this process records, each scrape reads every job's
 * lag (its committed positions against the bus's end offsets) and the runs log from Postgres, so the gateway shows the
 * workers' progress even when they run in other processes.
 */
export function registerMetrics(app: OpenAPIHono<AppEnv>, services: Services) {
  // Scrape-time series belong to this app (and its services); the process registry holds the rest.
  const scraped = new Registry();
  const lag = scraped.gauge("devpipe_consumer_lag", "Records in a job's input partition not yet committed by its group");
  const runs = scraped.gauge("devpipe_pipeline_runs", "Runs in the pipeline runs log, by job and status");
  const late = scraped.gauge("devpipe_late_events", "Events that arrived behind the watermark (counted, sent to events.late, never applied)");
  const deadLettered = scraped.gauge("devpipe_dead_lettered_records", "Records moved to events.dead, by the job whose sink refused them (from the runs log)");
  const lastRun = scraped.gauge("devpipe_pipeline_last_run_seconds", "Duration of each job's latest finished run");
  const busBytes = scraped.gauge("devpipe_bus_topic_bytes", "Bytes of log a topic keeps on disk (embedded bus), all partitions");
  const busSegments = scraped.gauge("devpipe_bus_topic_segments", "Segment files of a topic (embedded bus), all partitions");
  const busCap = scraped.gauge("devpipe_bus_retention_bytes", "A topic's byte cap (BUS_RETENTION_BYTES; embedded bus)");
  const busStart = scraped.gauge("devpipe_bus_log_start_offset", "Oldest offset a partition still keeps (embedded bus): retention advances it");
  const busBlocked = scraped.gauge("devpipe_bus_blocked", "1 while produces to a topic are refused (over its cap, a lagging consumer group holds the oldest segments), else 0");
  scraped.collect(async () => {
    const topics = await services.bus.storage();
    busBytes.replace(topics.map((t) => ({ labels: { topic: t.topic }, value: t.bytes })));
    busSegments.replace(topics.map((t) => ({ labels: { topic: t.topic }, value: t.segments })));
    busCap.replace(topics.map((t) => ({ labels: { topic: t.topic }, value: t.retentionBytes })));
    busStart.replace(topics.flatMap((t) => t.partitions.map((p) => ({ labels: { topic: t.topic, partition: String(p.partition) }, value: p.startOffset }))));
    busBlocked.replace(topics.map((t) => ({ labels: { topic: t.topic }, value: t.blocked ? 1 : 0 })));
  });
  scraped.collect(async () => {
    // From the positions of record (job_offsets), not the bus's group offsets: operators chained on one
    // consumer each commit their own position. A job that never committed is not running anywhere.
    const positions = await services.db.sql<{ job: string; topic: string; partition: number; next_offset: number }[]>`
      select job, topic, partition, next_offset from job_offsets where job = any(${Object.keys(jobInputs)})`;
    const inputs = [...new Set(Object.values(jobInputs))];
    const ends = new Map(await Promise.all(inputs.map(async (input) => [input, await services.bus.endOffsets(services.topics[input])] as const)));
    lag.replace(
      Object.entries(jobInputs).flatMap(([job, input]) => {
        const topic = services.topics[input];
        const mine = positions.filter((p) => p.job === job && p.topic === topic);
        if (mine.length === 0) return [];
        return (ends.get(input) ?? []).map((end) => ({
          labels: { job, topic, partition: String(end.partition) },
          value: Math.max(0, end.offset - (mine.find((p) => p.partition === end.partition)?.next_offset ?? 0)),
        }));
      }),
    );
  });
  scraped.collect(async () => {
    const counts = await services.db.sql<{ job: string; status: string; n: number }[]>`select job, status, count(*)::int as n from pipeline_runs group by job, status`;
    runs.replace(counts.map((c) => ({ labels: { job: c.job, status: c.status }, value: c.n })));
    const dead = await services.db.sql<{ job: string; n: number }[]>`select job, sum(records)::float8 as n from pipeline_runs where status = 'dead_letter' group by job`;
    deadLettered.replace(dead.map((d) => ({ labels: { job: d.job }, value: d.n })));
    const latest = await services.db.sql<{ job: string; seconds: number }[]>`
      select distinct on (job) job, extract(epoch from finished_at - started_at)::float8 as seconds
      from pipeline_runs where finished_at is not null order by job, started_at desc`;
    lastRun.replace(latest.map((l) => ({ labels: { job: l.job }, value: l.seconds })));
    const [lateRow] = await services.db.sql<{ n: number }[]>`select coalesce(sum(late_events), 0)::float8 as n from window_progress`;
    late.set({}, lateRow?.n ?? 0);
  });
  app.get("/metrics", async (c) => c.text((await scraped.render()) + (await registry.render()), 200, { "content-type": PROMETHEUS_CONTENT_TYPE }));
}
