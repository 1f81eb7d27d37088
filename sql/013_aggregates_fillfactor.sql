-- Window rows are rewritten at every windows checkpoint: room on each page lets those updates stay HOT (no new
-- index entries, dead versions pruned on the page as it is read), so the table and its indexes stay compact
-- between VACUUMs (PGlite has no autovacuum).
alter table aggregates set (fillfactor = 70);
