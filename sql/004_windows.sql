-- Window aggregates as partial rows per input partition: state moves with its partition on a rebalance,
-- and a reader merges the partials of a window. `state` is the view's accumulator, reloaded on restart.
create table if not exists aggregates (
  view         text        not null,
  key          text        not null,
  window_start timestamptz not null,
  partition    integer     not null,
  window_end   timestamptz not null,
  final        boolean     not null,
  state        jsonb       not null,
  updated_at   timestamptz not null default now(),
  primary key (view, window_start, key, partition)
);
create index if not exists aggregates_open on aggregates (partition) where not final;

-- Per input partition of the windows job: the watermark its owner had reached, the newest events.raw
-- offset applied (enrich replays below it are dropped), and how many events came too late.
create table if not exists window_progress (
  job           text    not null,
  partition     integer not null,
  watermark     bigint,
  source_offset bigint  not null default -1,
  late_events   bigint  not null default 0,
  updated_at    timestamptz not null default now(),
  primary key (job, partition)
);
