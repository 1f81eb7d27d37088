-- The lake's Delta logs are now the truth about its files, its dims versions and its input positions
-- (txn actions). The Postgres manifest goes: lake_dims and lake_progress at once; lake_files once it is
-- empty (a lake of the old layout keeps it until `bun run lake:migrate` has read it and drops it).
drop table if exists lake_dims;
drop table if exists lake_progress;
do $$
begin
  if not exists (select 1 from lake_files limit 1) then
    drop table lake_files;
  end if;
end $$;
