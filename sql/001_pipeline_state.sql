-- Positions of each stream job in its input, committed in the same transaction as the job's results
-- (exactly-once effect): on start a job seeks to these, not to the bus's own group offsets.
create table if not exists job_offsets (
  job         text        not null,
  topic       text        not null,
  partition   integer     not null,
  next_offset bigint      not null check (next_offset >= 0),
  updated_at  timestamptz not null default now(),
  primary key (job, topic, partition)
);

-- One row per sink flush or maintenance run (GET /v1/pipeline/runs).
create table if not exists pipeline_runs (
  run_id      bigint generated always as identity primary key,
  job         text        not null,
  started_at  timestamptz not null,
  finished_at timestamptz,
  status      text        not null check (status in ('running', 'succeeded', 'failed')),
  records     bigint      not null default 0,
  error       text
);
create index if not exists pipeline_runs_job_started on pipeline_runs (job, started_at desc);
