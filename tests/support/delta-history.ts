import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { Duck, sqlStringList } from "../../lib/lake/duckdb.ts";
import type { ObjectStore } from "../../lib/lake/types.ts";

/**
 * A Delta table's whole history read straight from its JSON commits (not through the app's log reader),
 * and a replay of it over the data files' own rows: what every version's snapshot holds, for checking
 * exactly-once at each version rather than only at the ones a poller happened to read.
 */

const addSchema = z.looseObject({ path: z.string(), stats: z.string().optional() });
const removeSchema = z.looseObject({ path: z.string() });
const lineSchema = z.looseObject({
  add: addSchema.optional(),
  remove: removeSchema.optional(),
  commitInfo: z.looseObject({ operation: z.string().optional() }).optional(),
});
const bounds = z.looseObject({ event_time: z.string().optional(), key: z.string().optional() });
const statsSchema = z.looseObject({ numRecords: z.number().int().nonnegative(), minValues: bounds.optional(), maxValues: bounds.optional() });
export type FileStats = z.infer<typeof statsSchema>;

export interface DeltaCommit {
  version: number;
  operation: string | undefined;
  adds: { path: string; stats: FileStats | undefined }[];
  removes: string[];
}

/** What a data file holds, read from the file. */
export interface FileRows {
  ids: string[];
  minTime: number;
  maxTime: number;
  minKey: string;
  maxKey: string;
}

const COMMIT = /\/_delta_log\/(\d{20})\.json$/;

function decodeCommit(version: number, text: string): DeltaCommit {
  const commit: DeltaCommit = { version, operation: undefined, adds: [], removes: [] };
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const action = lineSchema.parse(JSON.parse(line));
    if (action.commitInfo) commit.operation = action.commitInfo.operation;
    if (action.remove) commit.removes.push(action.remove.path);
    if (action.add) {
      const stats = action.add.stats === undefined ? undefined : statsSchema.safeParse(JSON.parse(action.add.stats)).data;
      commit.adds.push({ path: action.add.path, stats });
    }
  }
  return commit;
}

/** Every JSON commit of the table under `table` (a key prefix of `store`), in version order; throws on a hole in the log. */
export async function deltaCommits(store: ObjectStore, table: string): Promise<DeltaCommit[]> {
  const keys = (await store.list(`${table}/_delta_log/`)).flatMap((o) => {
    const match = COMMIT.exec(o.key);
    return match?.[1] ? [{ key: o.key, version: Number(match[1]) }] : [];
  });
  keys.sort((a, b) => a.version - b.version);
  keys.forEach((k, i) => {
    if (k.version !== i) throw new Error(`${table}: the log has no commit ${i} (next is ${k.version})`);
  });
  const commits: DeltaCommit[] = [];
  for (let i = 0; i < keys.length; i += 16) {
    const batch = await Promise.all(
      keys.slice(i, i + 16).map(async ({ key, version }) => {
        const bytes = await store.get(key);
        if (!bytes) throw new Error(`${key} was listed but cannot be read`);
        return decodeCommit(version, new TextDecoder().decode(bytes));
      }),
    );
    commits.push(...batch);
  }
  return commits;
}

/** The rows of each data file the commits ever added (keyed by the path as the log spells it), read from the files themselves. */
export async function rowsByFile(store: ObjectStore, table: string, commits: DeltaCommit[]): Promise<Map<string, FileRows>> {
  const paths = [...new Set(commits.flatMap((c) => c.adds.map((a) => a.path)))];
  const byFile = new Map<string, FileRows>(paths.map((p) => [p, { ids: [], minTime: Number.NaN, maxTime: Number.NaN, minKey: "", maxKey: "" }]));
  if (paths.length === 0) return byFile;
  const dir = await mkdtemp(join(tmpdir(), "devpipe-delta-history-"));
  const localOf = new Map<string, string>();
  try {
    for (let i = 0; i < paths.length; i += 16) {
      await Promise.all(
        paths.slice(i, i + 16).map(async (path, j) => {
          const key = `${table}/${decodeURIComponent(path)}`;
          const bytes = await store.get(key);
          // Every file ever added must still be there: VACUUM may delete a removed one only after LAKE_RETENTION_S (a day by default).
          if (!bytes) throw new Error(`${key} is in the log but not in the store`);
          const local = join(dir, `${i + j}.parquet`);
          await writeFile(local, bytes);
          localOf.set(local, path);
        }),
      );
    }
    const duck = await Duck.open();
    try {
      const source = `read_parquet(${sqlStringList([...localOf.keys()])}, filename = true, union_by_name = true)`;
      const fileOf = (row: Record<string, unknown>) => {
        const rows = byFile.get(localOf.get(String(row.filename)) ?? "");
        if (!rows) throw new Error(`DuckDB named a file it was not given: ${String(row.filename)}`);
        return rows;
      };
      for (const row of await duck.objects(`select filename, event_id from ${source}`)) fileOf(row).ids.push(String(row.event_id));
      const ranges = await duck.objects(`select filename, epoch_ms(min(event_time)) as min_time, epoch_ms(max(event_time)) as max_time, min("key") as min_key, max("key") as max_key from ${source} group by filename`);
      for (const row of ranges) {
        Object.assign(fileOf(row), { minTime: Number(row.min_time), maxTime: Number(row.max_time), minKey: String(row.min_key), maxKey: String(row.max_key) });
      }
    } finally {
      duck.close();
    }
    return byFile;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface ReplayFinding {
  version: number;
  operation: string | undefined;
  problem: string;
}

/** What an add's stats claim that the file contradicts: a reader skipping files by them would miss rows. */
function statsProblems(stats: FileStats | undefined, rows: FileRows): string[] {
  if (!stats) return [];
  const problems: string[] = [];
  if (stats.numRecords !== rows.ids.length) problems.push(`numRecords ${stats.numRecords} for ${rows.ids.length} rows`);
  if (rows.ids.length === 0) return problems;
  const minTime = stats.minValues?.event_time;
  const maxTime = stats.maxValues?.event_time;
  if (minTime !== undefined && Date.parse(minTime) !== rows.minTime) problems.push(`min event_time ${minTime}, the file's is ${new Date(rows.minTime).toISOString()}`);
  if (maxTime !== undefined && Date.parse(maxTime) !== rows.maxTime) problems.push(`max event_time ${maxTime}, the file's is ${new Date(rows.maxTime).toISOString()}`);
  // String bounds may be truncated, so they only have to enclose the file's values.
  const minKey = stats.minValues?.key;
  const maxKey = stats.maxValues?.key;
  if (minKey !== undefined && minKey > rows.minKey) problems.push(`min key ${minKey}, above the file's ${rows.minKey}`);
  if (maxKey !== undefined && maxKey < rows.maxKey) problems.push(`max key ${maxKey}, below the file's ${rows.maxKey}`);
  return problems;
}

/**
 * Replays the commits over the files' rows: at every version, each event id may be in at most one row of
 * the live files, a remove must name a live file, and an add's stats must hold for its file. Returns the
 * findings (empty when all hold) and the ids live at the last version.
 */
export function replayHistory(commits: DeltaCommit[], byFile: Map<string, FileRows>): { findings: ReplayFinding[]; live: Map<string, number> } {
  const findings: ReplayFinding[] = [];
  const liveFiles = new Set<string>();
  const live = new Map<string, number>();
  for (const commit of commits) {
    const finding = (problem: string) => findings.push({ version: commit.version, operation: commit.operation, problem });
    for (const path of commit.removes) {
      if (!liveFiles.delete(path)) {
        finding(`removes ${path}, which is not live`);
        continue;
      }
      for (const id of byFile.get(path)?.ids ?? []) live.set(id, (live.get(id) ?? 1) - 1);
    }
    for (const add of commit.adds) {
      const rows = byFile.get(add.path);
      const ids = rows?.ids ?? [];
      if (rows) for (const problem of statsProblems(add.stats, rows)) finding(`adds ${add.path} with stats: ${problem}`);
      if (liveFiles.has(add.path)) finding(`adds ${add.path} again while it is live`);
      liveFiles.add(add.path);
      for (const id of ids) live.set(id, (live.get(id) ?? 0) + 1);
    }
    const repeated = [...live].filter(([, n]) => n > 1);
    if (repeated.length > 0) finding(`${repeated.length} event ids live more than once, e.g. ${repeated.slice(0, 3).map(([id, n]) => `${id}×${n}`).join(", ")}`);
    for (const [id, n] of live) if (n <= 0) live.delete(id);
  }
  return { findings, live };
}
