import { join } from "node:path";
import { eventTypes } from "../../lib/events/index.ts";
import { tableLogsOf } from "../../lib/lake/delta/log.ts";
import { Duck, sqlStringList } from "../../lib/lake/duckdb.ts";
import { lakeCacheDir, localFiles } from "../../lib/lake/local-files.ts";
import { eventTableOf, fileKeyOf } from "../../lib/lake/tables.ts";
import type { ObjectStore } from "../../lib/lake/types.ts";
import type { Services } from "../../lib/services.ts";

/** Object keys of every live file of every event table's latest snapshot. */
async function liveEventFileKeys(store: ObjectStore): Promise<string[]> {
  const logs = tableLogsOf(store);
  const perTable = await Promise.all(
    [...eventTypes.keys()].map(async (type) => {
      const table = eventTableOf(type);
      const snapshot = await logs.snapshot(table);
      return snapshot ? [...snapshot.files.keys()].map((path) => fileKeyOf(table, path)) : [];
    }),
  );
  return perTable.flat();
}

/**
 * How many rows each event id has across every live file of every event table's latest Delta snapshot,
 * read straight from the Parquet files (no deduplication on the way), for checking exactly-once into the lake.
 */
export async function lakeIdCounts(services: Services, scratchDir: string): Promise<Map<string, number>> {
  const keys = await liveEventFileKeys(services.lake);
  if (keys.length === 0) return new Map();
  const paths = await localFiles(services.lake, lakeCacheDir(join(scratchDir, "id-check"))).paths(keys);
  const duck = await Duck.open();
  try {
    const rows = await duck.objects(`select event_id, count(*) as n from read_parquet(${sqlStringList(paths)}, union_by_name = true) group by event_id`);
    return new Map(rows.map((r) => [String(r.event_id), Number(r.n)]));
  } finally {
    duck.close();
  }
}
