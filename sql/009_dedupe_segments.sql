-- The chain's dedupe state (workers/chain/dedupe.ts): per events.raw partition, the event ids read in
-- offsets [from_offset, to_offset), packed in `ids` (hash, first offset and ingest time of each id;
-- format in dedupe.ts). Rows are facts about the log: overlapping rows from two owners are harmless,
-- and a row written twice keeps both writers' ids (concatenated). `max_time` is the newest ingest time
-- read in the range: rows more than the horizon (plus the generations kept beyond it) older than a
-- partition's newest row are neither loaded nor kept.
create table if not exists dedupe_segments (
  topic       text        not null,
  partition   integer     not null,
  from_offset bigint      not null check (from_offset >= 0),
  to_offset   bigint      not null,
  max_time    timestamptz not null,
  ids         bytea       not null,
  primary key (topic, partition, from_offset, to_offset),
  check (to_offset > from_offset)
);
-- Loading (rows of a partition within the horizon of its newest) and the purge (rows past it).
create index if not exists dedupe_segments_time on dedupe_segments (topic, partition, max_time);
