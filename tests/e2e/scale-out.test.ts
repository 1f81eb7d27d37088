import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { z } from "zod";
import { createRandom } from "../../generators/random.ts";
import { loadConfig } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { closeServices, openServices, type Services } from "../../lib/services.ts";
import { jobInputs } from "../../lib/topics.ts";
import { type DeltaCommit, deltaCommits, replayHistory, rowsByFile } from "../support/delta-history.ts";
import { type DeltaSnapshot, readDelta } from "../support/delta-reader.ts";
import { readEnvelopesSince } from "../support/kafka.ts";
import { freshDatabase } from "../support/pg.ts";
import { expectViewsEqualReference, putDims, type Request } from "../support/pipeline-check.ts";
import { COLOURS, type FlatEvent, MIN, pipelineData } from "../support/pipeline-data.ts";
import { freePort, startProcess } from "../support/process.ts";
import { services as realServices, uniqueName } from "../support/services.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * Scale-out (issue 11): a gateway and three `worker all` processes on Kafka, Postgres and MinIO; while
 * events with repeats, out-of-order and late arrivals flow over two hours of past event time, one
 * worker is SIGKILLed, one SIGTERMed, and a fourth joins and leaves, while every worker compacts closed
 * hours every few seconds. delta-rs reads every table about once a second; afterwards the lake holds
 * each accepted event exactly once (at every version of its log too), alerts exist once, and the views
 * equal the DuckDB reference.
 */
const KEY = "scale-out-key";
const quiet = createLogger({ test: "scale-out" }, () => undefined);
const TYPES = ["vehicle.telemetry", "sensor.reading", "user.activity", "vehicle.location", "gps.fix"] as const;
const tableOf = (type: string) => `events/${type.replaceAll(".", "_")}`;
const s3 = () => realServices().s3;

type Child = ReturnType<typeof startProcess>;

/**
 * Three ten-minute data sets 55 minutes apart (the oldest about two and a half hours ago), GPS fixes
 * throughout, and, after the middle set, late events into the oldest hour plus client retries of old
 * events. Sent in this order, every event but the late ones is within the windows' allowed lateness.
 */
function scaleOutData(now: number) {
  const last = Math.floor((now - 40 * MIN) / MIN) * MIN;
  const starts = [last - 110 * MIN, last - 55 * MIN, last];
  const sets = starts.map((start, i) => ({ start, ...pipelineData(start, 31 + i) }));
  const random = createRandom(97);
  let n = 0;
  const gps = (t: number): FlatEvent => ({
    type: "gps.fix",
    event_id: `gps-${n++}`,
    device_id: `gps-${random.int(0, 5)}`,
    latitude: random.float(50, 53, 4),
    longitude: random.float(-2, 0, 4),
    speed: random.float(0, 120, 1),
    direction: random.pick(["North", "South", "East", "West"]),
    vehicle_type: "private",
    event_time: t,
  });
  const first = starts[0] ?? 0;
  const fixes = Array.from({ length: 1_500 }, () => first + random.int(0, last + 10 * MIN - first)).sort((a, b) => a - b).map(gps);
  const withRepeats = (events: FlatEvent[]) => events.flatMap((e) => (random.chance(0.05) ? [e, { ...e }] : [e]));

  // Late: new events in the oldest set's hour, sent once the middle set has moved every sensor's partition far past it.
  const oldest = sets[0];
  const late: FlatEvent[] = [];
  for (let i = 0; i < 150; i++) {
    const t = first + random.int(0, 10 * MIN - 1);
    late.push(gps(t), { type: "sensor.reading", event_id: `late-${i}`, sensor_id: `sensor-${i % 8}`, temperature: 99, humidity: 1, event_time: t });
  }
  const retries = (oldest?.unique ?? []).filter(() => random.chance(0.06)).map((e) => ({ ...e }));

  const sent: FlatEvent[] = [];
  let f = 0;
  const fixesUpTo = (t: number) => {
    while (f < fixes.length && (fixes[f]?.event_time ?? Infinity) <= t) sent.push(...withRepeats([fixes[f++] as FlatEvent]));
  };
  sets.forEach((set, i) => {
    for (const event of set.sent) {
      fixesUpTo(event.event_time);
      sent.push(event);
    }
    if (i === 1) sent.push(...withRepeats(late), ...retries);
  });
  fixesUpTo(Number.POSITIVE_INFINITY);
  return { sets, sent, dims: sets[0]?.dims ?? { car_models: [], car_colors: [], cars: [] }, late };
}

/** The workers' own warnings and errors (not kafkajs's), counted by message and error. */
function problemsIn(outputs: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of outputs.flatMap((o) => o.split("\n"))) {
    if (!/"level":"(warn|error)"/.test(line) || line.includes('"logger":"kafkajs"')) continue;
    const parsed = z.looseObject({ msg: z.string(), error: z.looseObject({ message: z.string() }).optional(), reason: z.string().optional() }).safeParse(JSON.parse(line));
    const what = parsed.success ? `${parsed.data.msg}${parsed.data.error ? `: ${parsed.data.error.message}` : ""}${parsed.data.reason ? `: ${parsed.data.reason}` : ""}` : line;
    const key = what.slice(0, 300);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** The partition delta-rs names for an event time, as in `rowsByPartition`. */
const partitionOf = (eventTime: number) => {
  const iso = new Date(eventTime).toISOString();
  return `date=${iso.slice(0, 10)}/hour=${Number(iso.slice(11, 13))}`;
};

const AppCounts = z.object({ rows: z.array(z.tuple([z.string(), z.number(), z.number()])) });

/** Rows and distinct ids of each type's table as the app's own lake reader (POST /v1/query) sees them; undefined when it answers 429. */
async function appCounts(request: Request): Promise<Map<string, { rows: number; distinct: number }> | undefined> {
  const sql = TYPES.map((t) => `select '${t}' as type, count(*)::INTEGER as n, count(distinct event_id)::INTEGER as d from ${t.replaceAll(".", "_")}`).join(" union all ");
  const response = await request("/v1/query", { method: "POST", body: JSON.stringify({ sql }), headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` } });
  if (response.status === 429) return undefined;
  const body: unknown = await response.json();
  if (response.status !== 200) throw new Error(`POST /v1/query: ${response.status} ${JSON.stringify(body).slice(0, 500)}`);
  return new Map(AppCounts.parse(body).rows.map(([type, rows, distinct]) => [type, { rows, distinct }]));
}

/** What one delta-rs read of a table saw. */
interface Read {
  at: number;
  table: string;
  snapshot: DeltaSnapshot;
}

describe("scale-out: three workers with kills, joins and simultaneous compactions on Kafka, Postgres and MinIO", () => {
  const scratch = tempDir("devpipe-scale-out-");
  const lakePrefix = uniqueName("scale-out-lake");
  const lakeUri = `s3://${s3().bucket}/${lakePrefix}`;
  let database: Awaited<ReturnType<typeof freshDatabase>>;
  let services: Services;
  let env: Record<string, string>;
  let gateway: Child;
  let url: string;
  const running = new Set<Child>();

  beforeAll(async () => {
    database = await freshDatabase();
    env = {
      KAFKA_BROKERS: realServices().kafkaBrokers.join(","),
      DATABASE_URL: database.url,
      TOPIC_PREFIX: `${uniqueName("so")}.`,
      BUS_PARTITIONS: "6",
      LAKE_URL: lakeUri,
      S3_ENDPOINT: s3().endpoint,
      AWS_ACCESS_KEY_ID: s3().accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3().secretAccessKey,
      AWS_REGION: s3().region,
      WATERMARK_IDLE_TIMEOUT_MS: "1000",
      LAKE_FLUSH_INTERVAL_MS: "500",
      LAKE_COMPACT_AFTER_S: "0",
      LAKE_COMPACT_INTERVAL_MS: "3000",
      API_KEYS: `${KEY}:ingest+query+admin`,
      LOG_LEVEL: "info",
    };
    // The test's own connections, to inspect Postgres, the topics' ends and the lake's objects.
    services = await openServices(loadConfig({ ...env, DATA_DIR: `${scratch.path}/inspect` }), quiet);
    const port = freePort();
    gateway = startProcess(["api/main.ts"], { ...env, PORT: String(port), DATA_DIR: `${scratch.path}/api` });
    running.add(gateway);
    url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, { timeoutMs: 60_000, intervalMs: 200, what: "the gateway ready" });
  }, 90_000);

  afterAll(async () => {
    for (const child of running) child.child.kill("SIGKILL");
    await Promise.all([...running].map((child) => child.exited()));
    await closeServices(services);
    await database.drop();
    scratch.remove();
  });

  test("every accepted event is in its lake table once at every snapshot, alerts once, views equal the reference, and OPTIMIZE ran", async () => {
    const request: Request = (path, init) => fetch(`${url}${path}`, init);
    const data = scaleOutData(Date.now());
    const colourOfCar = (carId: number) => {
      const car = data.dims.cars.find((c) => c.car_id === carId);
      return car ? (COLOURS[car.color_id - 1] ?? null) : null;
    };
    // Dims first, so that every worker's enrichment starts with them.
    await putDims(request, KEY, data.dims);

    let workerCount = 0;
    const workerOutputs: { name: string; worker: Child }[] = [];
    const startWorker = () => {
      const name = `worker-${++workerCount}`;
      // The entry file itself, not `bun run worker`: a signal must reach the worker, not a script runner in between.
      const worker = startProcess(["workers/main.ts", "all"], { ...env, DATA_DIR: `${scratch.path}/${name}` });
      running.add(worker);
      workerOutputs.push({ name, worker });
      return worker;
    };
    const started = (worker: Child) =>
      waitFor(
        () => {
          if (worker.child.exitCode !== null) throw new Error(`the worker exited ${worker.child.exitCode}: ${worker.output().slice(-1_500)}`);
          return worker.output().includes('"msg":"worker started"');
        },
        { timeoutMs: 60_000, intervalMs: 100, what: "a worker started" },
      );
    const stop = async (worker: Child, signal: "SIGKILL" | "SIGTERM") => {
      worker.child.kill(signal);
      const code = await worker.exited();
      running.delete(worker);
      return code;
    };

    // Started together, so their compaction timers run at the same moments.
    const [w1, w2, w3] = [startWorker(), startWorker(), startWorker()];
    await Promise.all([w1, w2, w3].map(started));

    // Accepted ids by type, from the gateway's answers.
    const accepted = new Map<string, Set<string>>(TYPES.map((t) => [t, new Set()]));
    const eventTimes = new Map<string, number>();
    const post = async (events: FlatEvent[]) => {
      for (let attempt = 0; ; attempt++) {
        const response = await request("/v1/events", { method: "POST", body: JSON.stringify(events), headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` } });
        // The bus could not take the writes (nothing accepted): a client retries.
        if (response.status === 503 && attempt < 20) {
          await Bun.sleep(500);
          continue;
        }
        expect(response.status).toBe(202);
        const body = (await response.json()) as { accepted: number; rejected: number; event_ids: string[] };
        expect(body).toMatchObject({ accepted: events.length, rejected: 0 });
        events.forEach((e, i) => {
          expect(body.event_ids[i]).toBe(e.event_id);
          accepted.get(e.type)?.add(e.event_id);
          eventTimes.set(e.event_id, e.event_time);
        });
        return;
      }
    };

    // delta-rs reads every table about once a second until told to stop.
    const reads: Read[] = [];
    const readFailures: { at: number; table: string; error: string }[] = [];
    // The app's reader too, every few rounds (it has two query slots).
    const appReads: Map<string, { rows: number; distinct: number }>[] = [];
    let reading = true;
    const reader = (async () => {
      for (let round = 0; reading; round++) {
        const roundStarted = Date.now();
        const appRead = async () => {
          // Until every table has its first commit, a view is missing.
          if (round % 3 !== 0 || TYPES.some((t) => !reads.some((r) => r.table === tableOf(t)))) return;
          try {
            const counts = await appCounts(request);
            if (counts) appReads.push(counts);
          } catch (error) {
            readFailures.push({ at: Date.now(), table: "POST /v1/query", error: error instanceof Error ? error.message : String(error) });
          }
        };
        await Promise.all([
          appRead(),
          ...TYPES.map(async (type) => {
            const table = tableOf(type);
            try {
              const snapshot = await readDelta(`${lakeUri}/${table}`, { s3: s3(), countDistinct: ["event_id"], timeoutMs: 60_000 });
              reads.push({ at: Date.now(), table, snapshot });
            } catch (error) {
              // Before its first commit a table does not exist; after it, a failed read is a finding.
              if (reads.some((r) => r.table === table)) readFailures.push({ at: Date.now(), table, error: error instanceof Error ? error.message : String(error) });
            }
          }),
        ]);
        await Bun.sleep(Math.max(0, 1_000 - (Date.now() - roundStarted)));
      }
    })();

    // Traffic over about 45 s, in small requests.
    const trafficStarted = Date.now();
    const chunks = 75;
    const size = Math.ceil(data.sent.length / chunks);
    const traffic = (async () => {
      for (let c = 0; c < chunks; c++) {
        await post(data.sent.slice(c * size, (c + 1) * size));
        await Bun.sleep(500);
      }
    })();

    // Membership changes while it flows: each one rebalances the partitions of every job.
    const exits: Record<string, number> = {};
    const at = async (ms: number) => Bun.sleep(Math.max(0, trafficStarted + ms - Date.now()));
    const chaos = (async () => {
      await at(7_000);
      exits.killed = await stop(w1, "SIGKILL");
      await at(10_000);
      const w4 = startWorker();
      await at(14_000);
      // One more that joins and then crashes, so a dead member's partitions wait out its session again.
      const w5 = startWorker();
      await Promise.all([started(w4), started(w5)]);
      await at(22_000);
      exits.terminated = await stop(w2, "SIGTERM");
      await at(28_000);
      exits.joinedThenKilled = await stop(w5, "SIGKILL");
      await at(34_000);
      exits.joinedThenTerminated = await stop(w4, "SIGTERM");
    })();

    try {
      await Promise.all([traffic, chaos]);
      // A current event moves the watermark past the data (the other partitions go idle after 1 s).
      await post([{ type: "sensor.reading", event_id: "driver", sensor_id: "driver", temperature: 1, humidity: 1, event_time: Date.now() - 1_000 }]);

      expect(exits.killed).not.toBe(0);
      expect(exits.joinedThenKilled).not.toBe(0);
      expect(exits.terminated).toBe(0);
      expect(exits.joinedThenTerminated).toBe(0);

      // Caught up: every job's committed position is at its input's end (enrich first: it produces what the others read).
      const positions = async () => services.db.sql<{ job: string; topic: string; partition: number; next_offset: number }[]>`select job, topic, partition, next_offset from job_offsets`;
      await waitFor(
        async () => {
          for (const [job, input] of Object.entries(jobInputs)) {
            const topic = services.topics[input];
            const ends = await services.bus.endOffsets(topic);
            const rows = await positions();
            const behind = ends.filter((e) => e.offset > (rows.find((r) => r.job === job && r.topic === topic && r.partition === e.partition)?.next_offset ?? 0));
            if (behind.length > 0) return false;
          }
          return true;
        },
        { timeoutMs: 120_000, intervalMs: 500, what: "every job's positions at its input's end" },
      );

      // The lake, by delta-rs: each table holds exactly the accepted events of its type.
      const finals = new Map<string, DeltaSnapshot>();
      for (const type of TYPES) {
        const expected = accepted.get(type)?.size ?? 0;
        const table = tableOf(type);
        finals.set(
          type,
          await waitFor(
            async () => {
              const snapshot = await readDelta(`${lakeUri}/${table}`, { s3: s3(), countDistinct: ["event_id"] });
              return snapshot.num_rows >= expected ? snapshot : undefined;
            },
            { timeoutMs: 30_000, intervalMs: 500, what: `${expected} rows in ${table}` },
          ),
        );
      }
      reading = false;
      await reader;
      const finalApp = await waitFor(() => appCounts(request), { timeoutMs: 30_000, intervalMs: 500, what: "a query slot" });
      for (const type of TYPES) {
        const expected = accepted.get(type)?.size ?? 0;
        expect(expected).toBeGreaterThan(0);
        const snapshot = finals.get(type);
        expect({ type, rows: snapshot?.num_rows, distinct: snapshot?.distinct.event_id }).toEqual({ type, rows: expected, distinct: expected });
        expect({ type, ...finalApp.get(type) }).toEqual({ type, rows: expected, distinct: expected });
        // Each event in its event time's date and hour partition.
        const byPartition: Record<string, number> = {};
        for (const id of accepted.get(type) ?? []) {
          const partition = partitionOf(eventTimes.get(id) ?? Number.NaN);
          byPartition[partition] = (byPartition[partition] ?? 0) + 1;
        }
        const partitions = await readDelta(`${lakeUri}/${tableOf(type)}`, { s3: s3(), rowsByPartition: true });
        expect({ type, partitions: partitions.rows_by_partition }).toEqual({ type, partitions: byPartition });
      }
      // The dims too: exactly the rows of the last PUT, however many workers exported them.
      for (const [name, rows] of Object.entries(data.dims)) {
        const dim = await readDelta(`${lakeUri}/dims/${name}`, { s3: s3() });
        expect({ name, rows: dim.num_rows }).toEqual({ name, rows: rows.length });
      }

      // Every read made while it ran saw each event once, and no table ever lost rows between reads.
      const duplicateReads = reads.filter((r) => r.snapshot.num_rows !== r.snapshot.distinct.event_id);
      expect(duplicateReads.map((r) => `${r.table}@v${r.snapshot.version}: ${r.snapshot.num_rows} rows, ${r.snapshot.distinct.event_id} ids`)).toEqual([]);
      const shrinking = reads.filter((r) => reads.some((o) => o.table === r.table && o.snapshot.version < r.snapshot.version && o.snapshot.num_rows > r.snapshot.num_rows));
      expect(shrinking.map((r) => `${r.table}@v${r.snapshot.version}: ${r.snapshot.num_rows} rows`)).toEqual([]);
      expect(readFailures).toEqual([]);
      const appDuplicates = appReads.flatMap((counts) => [...counts].filter(([, c]) => c.rows !== c.distinct).map(([type, c]) => `${type}: ${c.rows} rows, ${c.distinct} ids`));
      expect(appDuplicates).toEqual([]);

      // Every version of every table's log, replayed over the files' own rows: no event live twice at any
      // version, and the last one holds exactly the accepted events.
      const histories = new Map<string, DeltaCommit[]>();
      for (const type of TYPES) {
        const table = tableOf(type);
        const commits = await deltaCommits(services.lake, table);
        histories.set(type, commits);
        const { findings, live } = replayHistory(commits, await rowsByFile(services.lake, table, commits));
        expect(findings.slice(0, 10)).toEqual([]);
        const ids = accepted.get(type) ?? new Set<string>();
        expect([...live.keys()].filter((id) => !ids.has(id)).slice(0, 10)).toEqual([]);
        expect([...ids].filter((id) => !live.has(id)).slice(0, 10)).toEqual([]);
      }
      const optimizes = [...histories].flatMap(([type, commits]) => commits.filter((c) => c.operation === "OPTIMIZE").map((c) => `${type}@v${c.version}`));
      expect(optimizes.length).toBeGreaterThan(0);

      // Alerts: one per alerted event, each stored once.
      const unique = data.sets.flatMap((s) => s.unique);
      const alerted = unique.filter((e) => e.type === "vehicle.telemetry" && ((e.speed as number) > 120 || (e.rpm as number) > 6000 || Math.round((e.speed as number) / 30) !== e.gear));
      const [alerts] = await services.db.sql<{ n: number; distinct_events: number }[]>`select count(*)::int as n, count(distinct event_id)::int as distinct_events from alerts`;
      expect(alerts).toEqual({ n: alerted.length, distinct_events: alerted.length });

      // Late: exactly the late events sent (repeats of them were dropped by enrich); nothing else judged late.
      // events.late is written before the windows' transaction commits, so a checkpoint that rolls back
      // (fenced by a new owner) leaves copies there: compared as a set, the copies reported below.
      const lateRecords = (await readEnvelopesSince(services.bus, services.topics.late, [])).map((e) => e.event_id);
      const lateIds = new Set(lateRecords);
      const sentLate = data.late.filter((e) => e.type === "sensor.reading").map((e) => e.event_id);
      expect([...lateIds].filter((id) => !sentLate.includes(id)).map((id) => `${id} @ ${new Date(eventTimes.get(id) ?? 0).toISOString()}`)).toEqual([]);
      expect([...lateIds].toSorted()).toEqual(sentLate.toSorted());

      // Views: each set's windows equal the reference over every unique event (the late ones changed nothing).
      for (const set of data.sets) await expectViewsEqualReference(request, KEY, unique, set.start, colourOfCar, 60_000);
      const [late] = await services.db.sql<{ n: number }[]>`select coalesce(sum(late_events), 0)::int as n from window_progress`;
      expect(late?.n).toBe(sentLate.length);

      const outputs = workerOutputs.map(({ name, worker }) => ({ name, output: worker.output() }));
      const count = (pattern: string) => outputs.reduce((sum, o) => sum + o.output.split(pattern).length - 1, 0);
      const optimizeAfterRead = reads.filter((r) => histories.get(TYPES.find((t) => tableOf(t) === r.table) ?? "")?.[r.snapshot.version]?.operation === "OPTIMIZE").length;
      console.info(
        JSON.stringify({
          seconds: Math.round((Date.now() - trafficStarted) / 1000),
          sent: data.sent.length,
          accepted: Object.fromEntries([...accepted].map(([t, ids]) => [t, ids.size])),
          reads: reads.length,
          app_reads: appReads.length,
          reads_at_an_optimize_version: optimizeAfterRead,
          optimize_commits: optimizes.length,
          compaction_conflicts_logged: count("compaction skipped"),
          fenced_checkpoints_logged: count("positions were committed by another owner"),
          late_topic_copies: lateRecords.length - lateIds.size,
          fenced_lake_commits_logged: count("lake commit fenced"),
          versions: Object.fromEntries([...histories].map(([t, c]) => [t, c.length])),
          problems: problemsIn(outputs.map((o) => o.output)),
        }, null, 1),
      );
    } catch (error) {
      // Their own last words (kafkajs's chatter left out) and what went wrong in each.
      for (const { name, worker } of workerOutputs) {
        const own = worker.output().split("\n").filter((line) => !line.includes('"logger":"kafkajs"'));
        console.error(`${name} output:`, own.slice(-25).join("\n"), "\nproblems:", JSON.stringify(problemsIn([worker.output()]), null, 1));
      }
      console.error("gateway output:", gateway.output().slice(-1_500));
      console.error("job positions:", JSON.stringify(await services.db.sql`select job, topic, partition, next_offset from job_offsets order by job, topic, partition`));
      throw error;
    } finally {
      reading = false;
      await reader;
      await Promise.allSettled([traffic, chaos]);
      expect(await stop(w3, "SIGTERM")).toBe(0);
    }
  }, 300_000);
});
