-- The enrich job's claimed ids (one row per event) are replaced by the chain's per-partition dedupe state
-- (dedupe_segments, 009). Repeats of events sent before the upgrade are no longer recognised.
drop table if exists seen_events;
