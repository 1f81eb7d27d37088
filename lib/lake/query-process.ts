import { rmSync } from "node:fs";
import { Duck, sqlStringList } from "./duckdb.ts";
import { type FromProcess, type Job, ToProcess } from "./query-protocol.ts";
import { CancelledError, itemsBody, tableBody } from "./result-body.ts";
import { checkParsedStatement } from "./sql-allow-list.ts";

/**
 * A query process (spawned by query-pool.ts): runs the gateway's lake queries one at a time, away from
 * its event loop. Parsing, planning, execution and building the response body all happen here; the
 * gateway kills the process when a query overruns its deadline (a native call stuck in DuckDB's
 * parser cannot be interrupted), and the memory goes with it.
 *
 * Usage: bun query-process.ts <work dir>
 */

/** A query's own fault (refused by the allow-list, or an error DuckDB raised on it): a 400. */
class InvalidQuery extends Error {}

interface Current {
  id: number;
  cancelled: boolean;
  duck?: Duck;
  interrupter?: Timer;
}

const workDir = process.argv[2];
if (!workDir || !process.send) {
  process.stderr.write("query-process: run by the query pool, with a work directory and an IPC channel\n");
  process.exit(2);
}
const send = (message: FromProcess) => process.send?.(message);
const rss = () => process.memoryUsage().rss;

const settings = { threads: "2", memory_limit: "1GB", temp_directory: workDir, autoinstall_known_extensions: "false", autoload_known_extensions: "false" };

/** No file but under `allowedDirectories`, no network, no extensions, no further settings. */
async function lockDown(duck: Duck, allowedDirectories: string[]): Promise<void> {
  await duck.run(`set allowed_directories = ${sqlStringList(allowedDirectories)}`);
  await duck.run("set enable_external_access = false");
  await duck.run("set lock_configuration = true");
}

const parser = await Duck.open(settings);
await lockDown(parser, []);

let current: Current | undefined;

const stopIfCancelled = (state: Current) => {
  if (state.cancelled) throw new CancelledError();
};

async function check(job: Extract<Job, { kind: "check" }>, state: Current): Promise<FromProcess> {
  state.duck = parser;
  // json_serialize_sql refuses anything but SELECT statements, which is what the guard wants.
  const { rows } = await parser.query("select json_serialize_sql(?::varchar)", [job.sql]);
  stopIfCancelled(state);
  const verdict = checkParsedStatement(JSON.parse(String(rows[0]?.[0] ?? "null")), new Set(job.tables));
  if (!verdict.ok) throw new InvalidQuery(verdict.reason);
  return { kind: "checked", id: job.id, tables: verdict.tables, rss: rss() };
}

async function run(job: Extract<Job, { kind: "run" }>, state: Current): Promise<FromProcess> {
  stopIfCancelled(state);
  const duck = await Duck.open(settings);
  state.duck = duck;
  try {
    for (const statement of job.setup) {
      stopIfCancelled(state);
      await duck.run(statement);
    }
    await lockDown(duck, job.allowedDirectories);
    stopIfCancelled(state);
    try {
      const stream = await duck.stream(job.sql, job.params);
      const limits = { maxRows: job.maxRows, maxBytes: job.maxBytes, cancelled: () => state.cancelled };
      const built = await (job.format === "table" ? tableBody(stream, limits) : itemsBody(stream, limits));
      return { kind: "result", id: job.id, ...built, rss: rss() };
    } catch (error) {
      if (error instanceof CancelledError) throw error;
      throw new InvalidQuery(error instanceof Error ? error.message : String(error));
    }
  } finally {
    state.duck = undefined;
    duck.close();
  }
}

async function handle(job: Job): Promise<void> {
  const state: Current = { id: job.id, cancelled: false };
  current = state;
  let reply: FromProcess;
  try {
    reply = job.kind === "check" ? await check(job, state) : await run(job, state);
  } catch (error) {
    const invalid = error instanceof InvalidQuery || error instanceof CancelledError;
    reply = { kind: "failed", id: job.id, message: error instanceof Error ? error.message : String(error), invalid, rss: rss() };
  } finally {
    clearInterval(state.interrupter);
    current = undefined;
  }
  send(reply);
}

process.on("message", (raw: unknown) => {
  const message = ToProcess.parse(raw);
  if (message.kind !== "cancel") {
    void handle(message);
    return;
  }
  const state = current;
  if (state?.id !== message.id || state.cancelled) return;
  state.cancelled = true;
  // DuckDB forgets an interrupt that lands before its statement starts, so keep interrupting until the job ends.
  state.duck?.interrupt();
  state.interrupter = setInterval(() => state.duck?.interrupt(), 25);
});

// The gateway is gone: nobody will read an answer.
const leave = () => {
  rmSync(workDir, { recursive: true, force: true });
  process.exit(0);
};
process.on("disconnect", leave);
const parentPid = process.ppid;
setInterval(() => {
  if (process.ppid !== parentPid) leave();
}, 1_000).unref();

send({ kind: "ready" });
