import { join } from "node:path";
import { z } from "zod";
import { schemathesisVenv } from "./schemathesis.ts";
import type { ServiceSettings } from "./services.ts";

/**
 * An independent reader of the lake's Delta tables: deltalake (delta-rs, Python, pinned in
 * scripts/python-requirements.txt) run from the cached test virtualenv, through tests/support/delta-reader.py.
 * tests/support/delta-fixture.py writes a small known table with the same library, for testing this reader.
 */

const support = new URL("./", import.meta.url).pathname;

/** The Python of the cached virtualenv (scripts/python-venv.sh builds it when it is missing or stale). */
let python: string | undefined;
export function venvPython(): string {
  python ??= join(schemathesisVenv(), "bin", "python");
  return python;
}

export type S3Settings = ServiceSettings["s3"];

/**
 * delta-rs storage options for MinIO: path-style requests (delta-rs's default with an endpoint) over plain
 * HTTP. Reading needs nothing more; delta-rs 1.x commits to S3 with conditional puts (If-None-Match), which
 * MinIO supports, so writing needs no locking provider either.
 */
export function deltaStorageOptions(s3: S3Settings): Record<string, string> {
  return {
    AWS_ENDPOINT_URL: s3.endpoint,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: s3.region,
    AWS_ALLOW_HTTP: s3.endpoint.startsWith("http://") ? "true" : "false",
  };
}

const DeltaSnapshot = z.object({
  version: z.number().int().nonnegative(),
  num_rows: z.number().int().nonnegative(),
  /** Distinct values (nulls count as one) of each --count-distinct column. */
  distinct: z.record(z.string(), z.number().int().nonnegative()),
  /** Each field's Delta type ("string", "date", "integer", "timestamp", …) and the Arrow type pyarrow reads it as. */
  schema: z.array(z.object({ name: z.string(), type: z.string(), arrow: z.string() })),
  partition_columns: z.array(z.string()),
  /** Data files in this version's snapshot. */
  files: z.number().int().nonnegative(),
  /** The columns read: the projection plus what the counts need. */
  columns: z.array(z.string()),
  /** Rows per partition, keyed "date=2024-03-01/hour=10" (sorted), when asked for. */
  rows_by_partition: z.record(z.string(), z.number().int().nonnegative()).optional(),
});
export type DeltaSnapshot = z.infer<typeof DeltaSnapshot>;

export interface ReadDeltaOptions {
  /** Time travel: read this version rather than the latest. */
  version?: number;
  /** Columns to read (a projection); the counts add what they need. */
  columns?: string[];
  /** Columns whose distinct values to count, e.g. ["event_id"]. */
  countDistinct?: string[];
  rowsByPartition?: boolean;
  /** MinIO settings, for an s3:// URI. */
  s3?: S3Settings;
  timeoutMs?: number;
}

/** Reads the Delta table at `uri` (a local path or s3://bucket/prefix) with delta-rs; throws with the reader's message on failure. */
export async function readDelta(uri: string, opts: ReadDeltaOptions = {}): Promise<DeltaSnapshot> {
  const args = [uri];
  if (opts.version !== undefined) args.push("--version", String(opts.version));
  if (opts.columns?.length) args.push("--columns", opts.columns.join(","));
  for (const column of opts.countDistinct ?? []) args.push("--count-distinct", column);
  if (opts.rowsByPartition) args.push("--rows-by-partition");
  const stdout = await runPython("delta-reader.py", args, opts);
  return parseJson(DeltaSnapshot, stdout, `delta-reader ${uri}`);
}

const FixtureResult = z.object({ uri: z.string(), version: z.number().int() });

/**
 * Writes tests/support/delta-fixture.py's table at `uri` (which must not hold one): version 1, 11 rows,
 * 10 distinct event ids, partitioned by date and hour; version 0 has 6 rows.
 */
export async function writeDeltaFixture(uri: string, opts: { s3?: S3Settings; timeoutMs?: number } = {}): Promise<{ uri: string; version: number }> {
  return parseJson(FixtureResult, await runPython("delta-fixture.py", [uri], opts), `delta-fixture ${uri}`);
}

async function runPython(script: string, args: string[], opts: { s3?: S3Settings; timeoutMs?: number }): Promise<string> {
  const child = Bun.spawn([venvPython(), join(support, script), ...args], {
    // Storage options (with the secret key) go through the environment, not the command line.
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      PYTHONDONTWRITEBYTECODE: "1",
      ...(opts.s3 ? { DELTA_STORAGE_OPTIONS: JSON.stringify(deltaStorageOptions(opts.s3)) } : {}),
    },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const timeoutMs = opts.timeoutMs ?? 30_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  clearTimeout(timer);
  if (timedOut) throw new Error(`${script} ${args.join(" ")}: killed after ${timeoutMs} ms`);
  if (exitCode !== 0) throw new Error(stderr.trim() || `${script} ${args.join(" ")}: exit ${exitCode} with nothing on stderr`);
  return stdout;
}

function parseJson<T>(schema: z.ZodType<T>, stdout: string, what: string): T {
  let value: unknown;
  try {
    value = JSON.parse(stdout);
  } catch {
    throw new Error(`${what}: output is not JSON: ${stdout.slice(0, 300)}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new Error(`${what}: unexpected output (${z.prettifyError(parsed.error)}): ${stdout.slice(0, 300)}`);
  return parsed.data;
}
