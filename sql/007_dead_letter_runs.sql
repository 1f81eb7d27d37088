-- A stream job that moves records to events.dead records it in the runs log as a `dead_letter` run.
alter table pipeline_runs drop constraint if exists pipeline_runs_status_check;
alter table pipeline_runs add constraint pipeline_runs_status_check check (status in ('running', 'succeeded', 'failed', 'dead_letter'));
