-- One alert per enriched event that matched any rule. `seq` orders alerts as they were committed; the
-- list and stream cursors are built from it. event_id is unique: replays after a crash insert nothing.
create table if not exists alerts (
  seq        bigint generated always as identity,
  alert_id   uuid        primary key,
  event_id   text        not null unique,
  type       text        not null,
  key        text        not null,
  event_time timestamptz not null,
  rules      text[]      not null,
  event      jsonb       not null,
  created_at timestamptz not null default now()
);
create unique index if not exists alerts_seq on alerts (seq);
create index if not exists alerts_event_time on alerts (event_time, seq);
create index if not exists alerts_key_event_time on alerts (key, event_time, seq);
