import { join } from "node:path";
import { Duck, sqlStringList } from "../../lib/lake/duckdb.ts";
import { lakeCacheDir, localFiles } from "../../lib/lake/local-files.ts";
import type { Services } from "../../lib/services.ts";
import { liveFiles } from "../../lib/store/lake-files.ts";

/**
 * How many rows each event id has across every file the manifest lists, read straight from the
 * Parquet files (no deduplication on the way), for checking exactly-once into the lake.
 */
export async function lakeIdCounts(services: Services, scratchDir: string): Promise<Map<string, number>> {
  const files = await liveFiles(services.db.sql);
  if (files.length === 0) return new Map();
  const paths = await localFiles(services.lake, lakeCacheDir(join(scratchDir, "id-check"))).paths(files.map((f) => f.key));
  const duck = await Duck.open();
  try {
    const rows = await duck.objects(`select event_id, count(*) as n from read_parquet(${sqlStringList(paths)}, union_by_name = true) group by event_id`);
    return new Map(rows.map((r) => [String(r.event_id), Number(r.n)]));
  } finally {
    duck.close();
  }
}
