-- Event ids the enrich job has passed on, kept while a repeat could still change an open window.
-- A repeat (client retry) finds its id here and is dropped: stored and counted once.
create table if not exists seen_events (
  event_id   text        primary key,
  expires_at timestamptz not null
);
create index if not exists seen_events_expires on seen_events (expires_at);
