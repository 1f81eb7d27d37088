-- Table retention (workers/maintenance/retention.ts) deletes, in small batches, what is past each table's horizon.
-- Alerts go by `created_at` (when the pipeline raised them), not `event_time`: the table then holds exactly the
-- alerts raised in the last ALERTS_RETENTION_DAYS whatever the devices' clocks say, a back-filled event's alert
-- is not deleted the moment it is raised, and what goes is the oldest run of `seq` (cursors never see holes).
create index if not exists alerts_created_at on alerts (created_at);
-- Only final windows go (open ones always stay), by `window_end`. The index is on `window_start` (never changed
-- by an update; `window_end` grows with a session, and indexing it would make those updates non-HOT): a window
-- ending before the cutoff also started before it, so the scan reads those plus the few longer windows that
-- straddle the cutoff.
create index if not exists aggregates_final_start on aggregates (window_start) where final;
-- pipeline_runs goes by started_at: pipeline_runs_started (006) serves it.
