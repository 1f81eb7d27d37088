/**
 * Peak memory of one compaction pass (workers/lake/compaction.ts), each case in a process of its own so the
 * figures are its own. A case writes `--files` flushes of `--rows-per-file` sensor readings into one hour of
 * a lake on local disk, as the sink does, then merges that hour with the product's DuckDB settings
 * (compactionDuckSettings) into files of at most `--merge-rows` rows, sampling RSS every 20 ms.
 * Prints one JSON line per case: rows, merges, seconds, and MB above the RSS before the pass: the peak, and
 * what is left once the pass's DuckDB is closed.
 * Flags: --files 340, --rows-per-file 6000 (the sink's 5 s flushes of one busy table at 4,000 events/s),
 *   --merge-rows 250000,1000000,2000000 (a list: one case each; the product's bound is COMPACTED_FILE_ROWS).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { copyToDataFiles, uploadDataFiles } from "../lib/lake/data-files.ts";
import { commit, ensureTable } from "../lib/lake/delta/commit.ts";
import { readSnapshot } from "../lib/lake/delta/log.ts";
import { createDirStore } from "../lib/lake/dir-store.ts";
import { Duck } from "../lib/lake/duckdb.ts";
import { localFiles } from "../lib/lake/local-files.ts";
import { eventTableDefinition, eventTableOf } from "../lib/lake/tables.ts";
import { createLogger } from "../lib/log.ts";
import { COMPACTED_FILE_ROWS, compactableGroups, compactGroup, compactionDuckSettings } from "../workers/lake/compaction.ts";
import { rssMb } from "./proc.ts";

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    files: { type: "string", default: "340" },
    "rows-per-file": { type: "string", default: "6000" },
    "merge-rows": { type: "string", default: `250000,1000000,${COMPACTED_FILE_ROWS}` },
    child: { type: "boolean", default: false },
  },
});
const FILES = Number(values.files);
const ROWS_PER_FILE = Number(values["rows-per-file"]);
const TYPE = "sensor.reading";
const TABLE = eventTableOf(TYPE);
const HOUR_START = Date.UTC(2026, 0, 10, 3);

async function measure(mergeRows: number) {
  const dir = mkdtempSync(join(tmpdir(), "devpipe-bench-compaction-"));
  const quiet = createLogger({ bench: "compaction-memory" }, () => undefined);
  try {
    const store = createDirStore(join(dir, "lake"));
    await ensureTable(store, TABLE, eventTableDefinition(TYPE));
    const writer = await Duck.open({ threads: "1" });
    for (let n = 0; n < FILES; n++) {
      const select = `select 'e-${n}-' || i as event_id, 'dev-' || ((i * 7919 + ${n}) % 1000) as key,
          make_timestamptz((${HOUR_START} + ${n} * 10000 + i % 10000) * 1000) as event_time, make_timestamptz((${HOUR_START} + ${n} * 10000) * 1000) as ingest_time,
          's-' || (i % 1000) as sensor_id, 20.0 + (i % 100) / 10 as temperature, 40.0 + (i % 37) as humidity,
          DATE '2026-01-10' as date, 3::INTEGER as hour
        from range(${ROWS_PER_FILE}) t(i)`;
      const files = await copyToDataFiles(writer, select, join(dir, `flush-${n}`), { partitioned: true });
      const adds = await uploadDataFiles(store, TABLE, files, "part", true);
      const snapshot = await readSnapshot(store, TABLE);
      await commit(store, TABLE, adds.map((add) => ({ add })), { readVersion: snapshot.version, isBlindAppend: true });
      rmSync(join(dir, `flush-${n}`), { recursive: true, force: true });
    }
    writer.close();
    Bun.gc(true);
    await Bun.sleep(500);

    const before = rssMb(process.pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb(process.pid))), 20);
    const started = performance.now();
    const snapshot = await readSnapshot(store, TABLE);
    const groups = compactableGroups(TABLE, snapshot, Date.now(), 1_000, mergeRows);
    const duck = await Duck.open(compactionDuckSettings(join(dir, "duck-spill")));
    let rows = 0;
    try {
      const deps = { store, files: localFiles(store, join(dir, "cache")), duck, workDir: join(dir, "work"), logger: quiet };
      for (const group of groups) {
        const outcome = await compactGroup(deps, await readSnapshot(store, TABLE), group);
        if (outcome.status !== "committed") throw new Error(`merge not committed: ${outcome.status}`);
        rows += outcome.rows;
      }
    } finally {
      duck.close();
    }
    const seconds = (performance.now() - started) / 1000;
    await Bun.sleep(500);
    clearInterval(sampler);
    console.log(JSON.stringify({
      bench: "compaction-memory", files: FILES, rows_per_file: ROWS_PER_FILE, merge_rows: mergeRows, memory_limit: compactionDuckSettings("").memory_limit,
      rows, merges: groups.length, seconds: +seconds.toFixed(1), rss_before_mb: Math.round(before),
      peak_over_before_mb: Math.round(peak - before), after_close_over_before_mb: Math.round(rssMb(process.pid) - before),
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (values.child) await measure(Number(values["merge-rows"]));
else {
  for (const mergeRows of String(values["merge-rows"]).split(",").map(Number)) {
    const args = ["--files", String(FILES), "--rows-per-file", String(ROWS_PER_FILE), "--merge-rows", String(mergeRows), "--child"];
    const child = Bun.spawn([process.execPath, import.meta.path, ...args], { stdout: "inherit", stderr: "inherit" });
    if ((await child.exited) !== 0) process.exit(1);
  }
}
