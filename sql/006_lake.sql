-- The lake's manifest: every Parquet file readers may use, written in the transaction that commits the
-- sink's input positions. Readers list files here, never by listing storage, so a file uploaded by a
-- flush that did not commit is invisible. Compaction inserts its merged file and marks the files it
-- replaces in one transaction; those stay readable until `removed_at` + a grace period, then go.
create table if not exists lake_files (
  key         text        primary key,
  type        text        not null,
  hour        timestamptz not null,
  partition   integer     not null,
  from_offset bigint      not null,
  to_offset   bigint      not null,
  rows        bigint      not null,
  bytes       bigint      not null,
  compacted   boolean     not null default false,
  created_at  timestamptz not null default now(),
  removed_at  timestamptz
);
create index if not exists lake_files_live on lake_files (type, hour, partition) where removed_at is null;
create index if not exists lake_files_removed on lake_files (removed_at) where removed_at is not null;

-- Where each enriched partition's records came from (events.raw offset), so a replay by enrich after
-- a crash is dropped rather than written twice.
create table if not exists lake_progress (
  partition     integer primary key,
  source_offset bigint  not null
);

-- The dims as Parquet in the lake: one immutable file per version, the newest listed here.
create table if not exists lake_dims (
  name       text        primary key,
  version    bigint      not null,
  key        text        not null,
  rows       bigint      not null,
  updated_at timestamptz not null default now()
);

create index if not exists pipeline_runs_started on pipeline_runs (started_at desc, run_id desc);
