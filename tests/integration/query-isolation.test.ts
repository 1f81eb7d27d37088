import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../../api/app.ts";
import type { Config } from "../../lib/config.ts";
import { MAX_SQL_BYTES } from "../../lib/lake/sql-guard.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { serviceSetups } from "../support/setups.ts";
import { tempDir } from "../support/tmp.ts";

/**
 * Lake queries cannot stall the gateway or each other: slots, a queue and 429, a per-key share, a
 * deadline that holds even inside DuckDB's parser, and byte caps on results.
 */
const apiKeys = ["k1", "k2", "k3"].map((key) => ({ key, scopes: ["ingest" as const, "query" as const] }));

/** 10^n rows from VALUES lists cross-joined: what the allow-list admits and no deadline survives. */
const ten = "(values (0),(1),(2),(3),(4),(5),(6),(7),(8),(9))";
const tens = (n: number) => Array.from({ length: n }, (_, i) => `${ten} t${i}(x${i})`).join(", ");
const RUNAWAY = `select count(*) from ${tens(11)}`;

type Json = { columns?: { name: string }[]; rows?: unknown[][]; truncated?: boolean; detail?: string; status?: number };

for (const [name, setup] of Object.entries(serviceSetups())) {
  describe(`lake query isolation (${name})`, () => {
    const dir = tempDir("devpipe-isolation-");
    let services: Services;
    let drop: () => Promise<void>;

    /** A gateway with its own query limits (and so its own slots and query processes). */
    const gateway = (query: Partial<Config["query"]>) => {
      const app = createApp({ ...services, config: { ...services.config, query: { ...services.config.query, ...query } } }, { apiKeys });
      const call = async (path: string, init: { key?: string; body?: string; method?: string } = {}) => {
        const started = performance.now();
        const response = await app.request(path, {
          method: init.method ?? (init.body === undefined ? "GET" : "POST"),
          body: init.body,
          headers: { "content-type": "application/json", authorization: `Bearer ${init.key ?? "k1"}` },
        });
        const text = await response.text();
        const json = (response.headers.get("content-type") ?? "").includes("json") ? (JSON.parse(text) as Json) : {};
        return { status: response.status, headers: response.headers, text, bytes: Buffer.byteLength(text), json, ms: performance.now() - started };
      };
      return { call, sql: (sql: string, key = "k1") => call("/v1/query", { key, body: JSON.stringify({ sql }) }) };
    };
    const reading = () => JSON.stringify({ type: "sensor.reading", sensor_id: "iso-1", temperature: 20, humidity: 40, event_time: new Date().toISOString() });

    beforeAll(async () => {
      ({ services, drop } = await setup(dir.path));
    });
    afterAll(async () => {
      await closeServices(services);
      await drop();
      dir.remove();
    });

    test("four runaway queries: /healthz and ingest answer within 1 s, select 1 after its queue slot, each runaway gets its timeout within QUERY_TIMEOUT_MS + 1 s", async () => {
      const timeoutMs = 1_500;
      const { call, sql } = gateway({ timeoutMs, maxConcurrent: 4, maxQueued: 8, queueTimeoutMs: 10_000 });
      // A gateway that has been serving queries: every slot's process has started.
      for (const warm of await Promise.all(["k1", "k1", "k2", "k2"].map((key) => sql("select 1", key)))) expect(warm.status).toBe(200);
      // Two keys, two runaways each: every slot is taken (a key may hold three of the four).
      const runaways = ["k1", "k1", "k2", "k2"].map((key) => sql(RUNAWAY, key));
      await Bun.sleep(300);
      const [health, ingest, one] = await Promise.all([call("/healthz"), call("/v1/events", { key: "k3", body: reading() }), sql("select 1 as one", "k3")]);
      expect(health.status).toBe(200);
      expect(health.ms).toBeLessThan(1_000);
      expect(ingest.status).toBe(202);
      expect(ingest.ms).toBeLessThan(1_000);
      // select 1 waited for the first slot to come free (at the runaways' deadline), then ran at once.
      expect(one.status).toBe(200);
      expect(one.json.rows).toEqual([[1]]);
      expect(one.ms).toBeLessThan(timeoutMs + 1_000);
      const answers = await Promise.all(runaways);
      for (const runaway of answers) {
        expect(runaway.status).toBe(400);
        expect(runaway.json.detail).toContain(`time limit of ${timeoutMs} ms`);
        expect(runaway.ms).toBeLessThan(timeoutMs + 1_000);
      }
      console.log(JSON.stringify({ setup: name, timeout_ms: timeoutMs, runaway_answer_ms: answers.map((a) => Math.round(a.ms)), healthz_ms: Math.round(health.ms), ingest_ms: Math.round(ingest.ms), select1_ms: Math.round(one.ms) }));
    });

    test("a statement over the size cap is refused at once; one under it that keeps the parser busy gets its timeout within the deadline", async () => {
      const timeoutMs = 300;
      const { call, sql } = gateway({ timeoutMs, maxConcurrent: 2 });
      const bomb = await sql(`select 1 ${"/*".repeat(50_000)}`);
      expect(bomb.status).toBe(413);
      expect(bomb.ms).toBeLessThan(1_000);
      const justOver = await sql(`select '${"x".repeat(MAX_SQL_BYTES)}'`);
      expect(justOver.status).toBe(400);
      expect(justOver.json.detail).toContain(`${MAX_SQL_BYTES} bytes`);
      // Unterminated nested comments: DuckDB's parser works on these for about a second, uninterruptibly.
      const heavy = `select 1 ${"/*".repeat((MAX_SQL_BYTES - 20) / 2)}`;
      expect(Buffer.byteLength(heavy)).toBeLessThanOrEqual(MAX_SQL_BYTES);
      const parsed = await sql(heavy);
      expect(parsed.status).toBe(400);
      expect(parsed.json.detail).toContain(`time limit of ${timeoutMs} ms`);
      expect(parsed.ms).toBeLessThan(timeoutMs + 1_000);
      // The process stuck in the parser is killed and replaced; queries go on.
      const after = await sql("select 42 as answer", "k2");
      expect({ status: after.status, rows: after.json.rows, detail: after.json.detail }).toEqual({ status: 200, rows: [[42]], detail: undefined });
      expect((await call("/healthz")).status).toBe(200);
    });

    test("huge results are cut at QUERY_MAX_BYTES with truncated: true while /healthz keeps answering", async () => {
      const maxBytes = services.config.query.maxBytes;
      const { call, sql } = gateway({ timeoutMs: 30_000, maxRows: 1_000_000 });
      let stop = false;
      let slowest = 0;
      const probing = (async () => {
        while (!stop) {
          const health = await call("/healthz");
          expect(health.status).toBe(200);
          slowest = Math.max(slowest, health.ms);
          await Bun.sleep(20);
        }
      })();
      const rssBefore = process.memoryUsage().rss;
      // 100,000 rows of about 1 KB: over 100 MB of JSON.
      const wide = await sql(`select lpad('', 1000, 'w') as wide, x0, x1, x2, x3, x4 from ${tens(5)}`);
      expect(wide.status).toBe(200);
      expect(wide.json.truncated).toBe(true);
      expect(wide.bytes).toBeLessThanOrEqual(maxBytes);
      expect(wide.bytes).toBeGreaterThan(maxBytes - 4_096);
      expect(wide.json.rows?.length).toBeGreaterThan(1_000);
      expect(wide.json.columns?.map((c) => c.name)).toEqual(["wide", "x0", "x1", "x2", "x3", "x4"]);
      // One value of 100 MB: no row fits.
      const one = await sql(`select list(lpad('', 100, 'l')) as huge from ${tens(6)}`);
      expect(one.status).toBe(200);
      expect(one.json).toMatchObject({ rows: [], truncated: true });
      stop = true;
      await probing;
      expect(slowest).toBeLessThan(1_000);
      const rssGrowth = process.memoryUsage().rss - rssBefore;
      console.log(JSON.stringify({ setup: name, slowest_healthz_ms: Math.round(slowest), gateway_rss_growth_mb: Math.round(rssGrowth / 1048576), wide_ms: Math.round(wide.ms), list_ms: Math.round(one.ms) }));
      expect(rssGrowth).toBeLessThan(512 * 1024 * 1024);
    });

    test("slots full and queue full: 429 with Retry-After, for SQL and GET /v1/events alike; one key never holds every slot", async () => {
      const { call, sql } = gateway({ timeoutMs: 3_000, maxConcurrent: 2, maxQueued: 1, queueTimeoutMs: 2_000 });
      const first = sql(RUNAWAY, "k1");
      await Bun.sleep(100);
      // k1's second query waits although a slot is free: one key holds at most max(1, slots - 1).
      const second = sql(RUNAWAY, "k1");
      await Bun.sleep(100);
      const other = await sql("select 1 as other", "k2");
      expect(other.status).toBe(200);
      expect(other.ms).toBeLessThan(1_000);
      const third = sql(RUNAWAY, "k2");
      await Bun.sleep(100);
      // Two running (k1, k2) and k1's second waiting: the queue (1) is full.
      const rejected = await sql("select 1", "k3");
      expect(rejected.status).toBe(429);
      expect(rejected.headers.get("content-type")).toContain("application/problem+json");
      expect(Number(rejected.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(rejected.ms).toBeLessThan(500);
      const events = await call("/v1/events?type=sensor.reading", { key: "k3" });
      expect(events.status).toBe(429);
      expect(events.headers.get("retry-after")).not.toBeNull();
      // The waiting query gives up after QUERY_QUEUE_TIMEOUT_MS; the running ones meet their deadline.
      const waited = await second;
      expect(waited.status).toBe(429);
      expect(waited.ms).toBeGreaterThanOrEqual(1_900);
      expect(waited.headers.get("retry-after")).not.toBeNull();
      for (const runaway of await Promise.all([first, third])) expect(runaway.status).toBe(400);
      const metrics = (await call("/metrics")).text;
      expect(metrics).toMatch(/^devpipe_lake_queries_total\{kind="sql",outcome="rejected"\} [1-9]/m);
      expect(metrics).toMatch(/^devpipe_lake_queries_total\{kind="events",outcome="rejected"\} [1-9]/m);
      expect(metrics).toMatch(/^devpipe_lake_queries_total\{kind="sql",outcome="timeout"\} [1-9]/m);
      // Slots come back: the next query runs.
      expect((await sql("select 1", "k3")).status).toBe(200);
    });
  });
}
