-- Watermarks per event type within a partition (workers/windows/watermark.ts): the windows job stores each
-- type's watermark at its checkpoints and restores them when it takes the partition over. `watermark` keeps
-- its meaning for readers: the partition's watermark, the minimum over the types that appeared in it.
alter table window_progress add column if not exists type_watermarks jsonb not null default '{}'::jsonb;
