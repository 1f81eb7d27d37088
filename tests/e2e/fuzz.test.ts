import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, startProcess } from "../support/process.ts";
import { failuresSection, readNdjsonReport, readSummary, runSt, schemathesisVenv, type StRun, type StTotals } from "../support/schemathesis.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * schemathesis against `bun run start` (embedded mode, a real process) through the OpenAPI document the
 * gateway serves: every operation, every phase (examples, coverage, fuzzing, stateful), a fixed seed, and the
 * checks that the gateway never answers 5xx, answers only documented statuses and content types, with bodies
 * that match their schemas, and rejects what its schema says is invalid. Then the pipeline must still work:
 * a 202 for an event a stream job cannot handle would poison that job, so fresh events of every type must
 * still reach the aggregates, the alerts and the lake, no checkpoint may have failed, and /readyz is 200.
 *
 * Nothing is excluded. The alert stream never ends by itself: tests/fuzz/schemathesis.toml gives it a 1 s
 * read budget per case. NDJSON bodies go through tests/fuzz/hooks.py.
 *
 * Reports (JUnit XML, every case as NDJSON, the console output with a curl line per failure) are kept in
 * .test-output/fuzz/. Reproduce one failure with the printed curl line, or all with the printed command.
 */

const repo = new URL("../../", import.meta.url).pathname;
const API_KEY = "fuzz-admin";
/** Fixed: the same cases every run, so a failure reproduces and a fix can be checked. DEVPIPE_FUZZ_SEED explores others. */
const SEED = Number(process.env.DEVPIPE_FUZZ_SEED ?? 20261122);
/**
 * Cases per operation in the fuzzing phase and per stateful run; the coverage phase adds its own deterministic
 * cases. DEVPIPE_FUZZ_MAX_EXAMPLES raises it for a deeper run by hand.
 */
const MAX_EXAMPLES = Number(process.env.DEVPIPE_FUZZ_MAX_EXAMPLES ?? 150);
const CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance", "negative_data_rejection"];
const reportDir = join(repo, ".test-output", "fuzz");

const scratch = tempDir("devpipe-fuzz-");
const port = freePort();
const base = `http://127.0.0.1:${port}`;
const auth = { Authorization: `Bearer ${API_KEY}` };
let app: ReturnType<typeof startProcess>;

afterAll(async () => {
  if (app && app.child.exitCode === null) {
    app.child.kill("SIGKILL");
    await app.exited();
  }
  scratch.remove();
});

beforeAll(async () => {
  app = startProcess(["start"], {
    DATA_DIR: join(scratch.path, "data"),
    PORT: String(port),
    API_KEYS: `${API_KEY}:ingest+query+admin`,
    // Fresh events reach the lake within a second, so the health check after the fuzzing is quick.
    LAKE_FLUSH_INTERVAL_MS: "500",
    // Accepted events lie at most 60 s ahead (default 1 h). The windows' watermark follows the newest event
    // time; with a fuzzed event 59 min ahead, the health check's events (stamped now) would be late for the
    // aggregates by design. Nothing else changes: the fuzzer still sends times anywhere.
    EVENT_MAX_FUTURE_S: "60",
  });
  const state = await waitFor(
    async () => {
      if (app.child.exitCode !== null) return "exited";
      return (await fetch(`${base}/readyz`)).status === 200 ? "ready" : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100, what: "/readyz 200 before fuzzing" },
  ).catch((error: unknown) => String(error));
  if (state !== "ready") throw new Error(`the server is not ready (${state})\n--- server output ---\n${app.output().slice(-4000)}`);
}, 90_000);

describe("schemathesis against bun run start (embedded)", () => {
  let totals: StTotals | undefined;
  let run: StRun | undefined;

  test(
    "every operation, every phase: no server error, only documented statuses, content types and schemas, invalid input rejected",
    async () => {
      const venv = schemathesisVenv();
      rmSync(reportDir, { recursive: true, force: true });
      mkdirSync(reportDir, { recursive: true });
      const args = [
        "--config-file",
        join(repo, "tests/fuzz/schemathesis.toml"),
        "run",
        `${base}/openapi.json`,
        "--header",
        `Authorization: Bearer ${API_KEY}`,
        "--phases=examples,coverage,fuzzing,stateful",
        `--checks=${CHECKS.join(",")}`,
        `--seed=${SEED}`,
        `--max-examples=${MAX_EXAMPLES}`,
        // Two cores shared with the server: one schemathesis worker keeps the run's order, hence its cases, stable.
        "--workers=1",
        // The in-process example database would replay earlier runs' failures: a run depends on its seed only.
        "--generation-database=none",
        "--request-timeout=10",
        "--output-sanitize=false",
        "--report=junit,ndjson",
        `--report-junit-path=${join(reportDir, "junit.xml")}`,
        `--report-ndjson-path=${join(reportDir, "events.ndjson")}`,
        "--no-color",
      ];
      run = await runSt(venv, args, { cwd: scratch.path, env: { SCHEMATHESIS_HOOKS: join(repo, "tests/fuzz/hooks.py") }, timeoutMs: 540_000 });
      writeFileSync(join(reportDir, "schemathesis.log"), `$ ${run.command}\n\n${run.output}`);
      // 0: no failure; 1: failures; anything else: schemathesis itself could not run (bad schema, bad option).
      if (run.exitCode !== 0 && run.exitCode !== 1) throw new Error(`st exited ${run.exitCode}:\n${run.output.slice(-6000)}`);

      totals = readNdjsonReport(join(reportDir, "events.ndjson"));
      const summary = readSummary(run.output);
      console.log(
        JSON.stringify({
          fuzz: {
            tool: "schemathesis 4.32.5",
            seed: SEED,
            max_examples: MAX_EXAMPLES,
            operations: totals.operations.length,
            test_cases: summary.generated ?? totals.testCases,
            requests: totals.requests,
            ndjson_cases: totals.ndjsonCases,
            by_phase: totals.byPhase,
            failures: summary.uniqueFailures,
            failed_checks: totals.failures.map((f) => `${f.operation} ${f.check} ${f.status ?? "-"}`),
            seconds: Math.round(run.seconds),
            exit_code: run.exitCode,
            command: `SCHEMATHESIS_HOOKS=tests/fuzz/hooks.py ${run.command.replaceAll(repo, "")}`,
          },
        }),
      );

      // The run covered the whole API, NDJSON bodies included.
      const documented = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
      const operations = Object.entries(documented.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`));
      expect(totals.operations).toEqual(operations.sort());
      expect(totals.ndjsonCases).toBeGreaterThan(0);
      for (const phase of ["examples", "coverage", "fuzzing", "stateful"]) expect(totals.byPhase[phase] ?? 0).toBeGreaterThan(0);
      expect(totals.errors).toEqual([]);

      if (run.exitCode !== 0) console.error(`schemathesis found failures (full report: .test-output/fuzz/schemathesis.log)\n${failuresSection(run.output)}`);
      expect(totals.failures).toEqual([]);
      expect(run.exitCode).toBe(0);
    },
    600_000,
  );

  test("afterwards the pipeline still works: fresh events of every type reach the aggregates, the alerts and the lake, no checkpoint failed, /readyz is 200", async () => {
    const postedAt = Date.now();
    const at = new Date(postedAt).toISOString();
    const tag = `fuzzcheck-${postedAt.toString(36)}`;
    const carId = 9_000_000 + (postedAt % 1_000_000);
    const sensorId = `${tag}-sensor`;
    const page = `/${tag}`;
    const events = [
      { type: "vehicle.telemetry", car_id: carId, speed: 150, rpm: 7000, gear: 5, event_time: at },
      { type: "vehicle.location", vehicle_id: `${tag}-vehicle`, user_id: `${tag}-driver`, latitude: 51.5, longitude: -0.12, speed: 42, fine_amount: 60, make: "Ford", model: "Focus", year: 2021, fuel_type: "petrol", event_time: at },
      { type: "gps.fix", device_id: `${tag}-gps`, latitude: 52.48, longitude: -1.89, speed: 30, direction: "North-East", vehicle_type: "bus", event_time: at },
      { type: "traffic.camera", camera_id: `${tag}-camera`, latitude: 52.4, longitude: -1.9, snapshot: "data:image/jpeg;base64,/9j/4AAQSkZJRg==", event_time: at },
      { type: "weather.observation", station_id: `${tag}-station`, latitude: 53.48, longitude: -2.24, temperature: 11.5, weather_condition: "Rain", precipitation: 2.5, wind_speed: 18, humidity: 88, air_quality_index: 31, event_time: at },
      { type: "emergency.incident", incident_id: `${tag}-incident`, incident_type: "Fire", status: "active", description: "health check after fuzzing", latitude: 51.45, longitude: -2.59, event_time: at },
      { type: "sensor.reading", sensor_id: sensorId, temperature: 20, humidity: 40, event_time: at },
      { type: "sensor.reading", sensor_id: sensorId, temperature: 22, humidity: 50, event_time: at },
      { type: "user.activity", user_id: `${tag}-user`, session_id: `${tag}-session`, action: "page_view", page, event_time: at },
    ];
    const keyOf: Record<string, string> = {
      "vehicle.telemetry": String(carId),
      "vehicle.location": `${tag}-vehicle`,
      "gps.fix": `${tag}-gps`,
      "traffic.camera": `${tag}-camera`,
      "weather.observation": `${tag}-station`,
      "emergency.incident": `${tag}-incident`,
      "sensor.reading": sensorId,
      "user.activity": `${tag}-user`,
    };
    const json = await fetch(`${base}/v1/events`, { method: "POST", headers: { ...auth, "Content-Type": "application/json" }, body: JSON.stringify(events) });
    expect(json.status).toBe(202);
    expect(await json.json()).toMatchObject({ accepted: events.length, rejected: 0 });
    // One more reading through the NDJSON path.
    const ndjson = await fetch(`${base}/v1/events/sensor.reading`, {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/x-ndjson" },
      body: `${JSON.stringify({ sensor_id: sensorId, temperature: 24, humidity: 60, event_time: at })}\n`,
    });
    expect(ndjson.status).toBe(202);
    expect(await ndjson.json()).toMatchObject({ accepted: 1, rejected: 0 });

    const get = async <T>(path: string): Promise<T> => {
      const response = await fetch(`${base}${path}`, { headers: auth });
      if (response.status !== 200) throw new Error(`GET ${path}: ${response.status} ${await response.text()}`);
      return (await response.json()) as T;
    };
    type Items = { items: Record<string, unknown>[] };
    const missing = async () => {
      const waiting: string[] = [];
      const stats = (await get<Items>(`/v1/aggregates/sensor_stats_1m?key=${encodeURIComponent(sensorId)}`)).items;
      if (stats.reduce((n, item) => n + Number(item.count ?? 0), 0) !== 3) waiting.push(`sensor_stats_1m ${JSON.stringify(stats)}`);
      const views = (await get<Items>(`/v1/aggregates/page_views_1m?key=${encodeURIComponent(page)}`)).items;
      if (views.reduce((n, item) => n + Number(item.views ?? 0), 0) !== 1) waiting.push(`page_views_1m ${JSON.stringify(views)}`);
      const alerts = (await get<Items>(`/v1/alerts?key=${carId}`)).items;
      if (alerts.length !== 1) waiting.push(`alerts ${JSON.stringify(alerts)}`);
      for (const [type, key] of Object.entries(keyOf)) {
        const lake = (await get<Items>(`/v1/events?type=${type}&key=${encodeURIComponent(key)}`)).items;
        const expected = type === "sensor.reading" ? 3 : 1;
        // Each item is the whole event: an object of its type and key (not, say, one of its columns).
        const whole = lake.filter((item) => typeof item === "object" && item !== null && item.type === type && item.key === key && typeof item.event_id === "string");
        if (whole.length !== expected) waiting.push(`lake ${type}: ${whole.length} of ${expected} (${JSON.stringify(lake).slice(0, 300)})`);
      }
      return waiting;
    };
    let waiting: string[] = [];
    await waitFor(
      async () => {
        waiting = await missing();
        return waiting.length === 0;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: "fresh events in the aggregates, alerts and lake" },
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}; still missing: ${waiting.join("; ")}\n--- server errors ---\n${serverErrors().slice(-20).join("\n")}`);
    });

    const ready = await fetch(`${base}/readyz`);
    const readiness = await ready.json();
    expect({ status: ready.status, readiness }).toMatchObject({ status: 200, readiness: { ready: true } });

    // No lake flush or compaction failed, and no job failed a checkpoint, moved a record to events.dead or
    // skipped one it could not decode: every 202 was stored, and every job is still committing.
    expect((await get<Items>("/v1/pipeline/runs?status=failed")).items).toEqual([]);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect({
      checkpoint_failures: sum(metrics, "devpipe_checkpoint_failures_total"),
      dead_records: sum(metrics, "devpipe_dead_records_total"),
      undecodable_records: sum(metrics, "devpipe_undecodable_records_total"),
      lake_flush_failures: sum(metrics, "devpipe_lake_flush_failures_total"),
    }).toEqual({ checkpoint_failures: 0, dead_records: 0, undecodable_records: 0, lake_flush_failures: 0 });
    // Each job hosted by the process committed after the events above were posted.
    const jobs = (/"msg":"listening".*?"jobs":(\[[^\]]*\])/.exec(app.output())?.[1] ?? "[]") as string;
    const since = (Date.now() - postedAt) / 1000;
    const ages = Object.fromEntries((JSON.parse(jobs) as string[]).map((job) => [job, sample(metrics, "devpipe_checkpoint_age_seconds", { job })]));
    expect(Object.keys(ages).length).toBeGreaterThan(0);
    for (const [job, age] of Object.entries(ages)) expect({ job, committedSincePost: age !== undefined && age <= since }).toEqual({ job, committedSincePost: true });
  }, 120_000);

  test("the process exits 0 on SIGTERM", async () => {
    app.child.kill("SIGTERM");
    expect(await app.exited()).toBe(0);
    expect(app.output()).toContain('"msg":"stopped"');
    const errors = serverErrors();
    if (errors.length > 0) console.error(`the server logged ${errors.length} errors during the run, e.g.:\n${errors.slice(0, 10).join("\n")}`);
  }, 60_000);
});

/** The server's error-level log lines (5xx and job failures), for a failing test's message. */
function serverErrors(): string[] {
  return app
    .output()
    .split("\n")
    .filter((line) => line.includes('"level":"error"'))
    .map((line) => line.slice(0, 600));
}

/** The sum of every sample of a Prometheus metric (0 when it has none). */
function sum(text: string, name: string): number {
  let total = 0;
  for (const line of text.split("\n")) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) total += Number(line.slice(line.lastIndexOf(" ") + 1));
  return total;
}

/** The value of one sample of a Prometheus metric, matched by its labels. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.lastIndexOf("}"));
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}
