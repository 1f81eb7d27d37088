import { heapStats } from "bun:jsc";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startGateway } from "../../api/server.ts";
import { encodeCursor } from "../../api/query-params.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { freePort } from "../support/process.ts";
import { serviceSetups } from "../support/setups.ts";
import { openRawSse, openSse } from "../support/sse.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * GET /v1/alerts/stream against clients that cannot keep up, on the real Postgres: a stalled replay is
 * dropped within its buffer, a slow reader gets a resumable `event: error`, each API key holds a bounded
 * number of streams, and bad parameters are refused before a stream starts. Alerts are written straight
 * into the alerts table, as the alerts job commits them.
 */
const KEY = "limits-key";
const OTHER = "limits-other";
const MAX_BUFFER = 1024 * 1024;
const MAX_STREAMS = 5;
const dir = tempDir("devpipe-sse-limits-");
let services: Services;
let drop: () => Promise<void>;
let gateway: Awaited<ReturnType<typeof startGateway>>;
let base: string;
const auth = (key = KEY) => ({ authorization: `Bearer ${key}` });

const metric = async (pattern: RegExp) => Number(pattern.exec(await (await fetch(`${base}/metrics`)).text())?.[1] ?? 0);
const openStreams = () => metric(/^devpipe_sse_clients (\d+)$/m);
const slowDrops = () => metric(/^devpipe_sse_rejected_total\{reason="slow_client"\} (\d+)$/m);
const keyLimitRefusals = () => metric(/^devpipe_sse_rejected_total\{reason="per_key_limit"\} (\d+)$/m);
/** The JS heap plus memory its objects hold outside it (buffers). */
const jsMemory = () => heapStats().heapSize + heapStats().extraMemorySize;
const bufferPeak = () => metric(/^devpipe_sse_buffer_peak_bytes (\d+)$/m);

/** `count` alerts for device `key`, each about 500 bytes on the wire; returns their event ids in commit order. */
async function insertAlerts(key: string, count: number, prefix: string): Promise<string[]> {
  const rows = await services.db.sql<{ event_id: string }[]>`
    insert into alerts (alert_id, event_id, type, key, event_time, rules, event)
    select gen_random_uuid(), ${prefix} || '-' || i, 'vehicle.telemetry', ${key}, now(), array['speeding'], jsonb_build_object('speed', 150, 'padding', repeat('x', 200))
    from generate_series(1, ${count}) i
    order by i
    returning event_id`;
  return rows.map((r) => r.event_id);
}

beforeAll(async () => {
  const setup = serviceSetups({
    PORT: String(freePort()),
    API_KEYS: `${KEY}:ingest+query,${OTHER}:query`,
    SSE_HEARTBEAT_MS: "500",
    // A stream the server ended is cut once its connection idles this long (at most 10 s): the slow reader must
    // resume within it, which on a loaded machine can take well over a second after the drop.
    HTTP_IDLE_TIMEOUT_S: "10",
    SSE_MAX_BUFFER_BYTES: String(MAX_BUFFER),
    SSE_MAX_STREAMS_PER_KEY: String(MAX_STREAMS),
  }).kafka;
  ({ services, drop } = await setup(dir.path));
  gateway = await startGateway(services);
  base = gateway.url;
});
afterAll(async () => {
  await gateway?.stop();
  if (services) await closeServices(services);
  await drop?.();
  dir.remove();
});

describe("alert streams under slow clients", () => {
  test("clients that ask for the whole table (?since=0) and never read are dropped, holding at most their buffer", async () => {
    // A large table: 40,000 alerts, about 20 MB of frames.
    for (let i = 0; i < 4; i++) await insertAlerts("history", 10_000, `history-${i}`);
    const stallReplays = async () => {
      const clients = await Promise.all(Array.from({ length: MAX_STREAMS }, () => openRawSse(`${base}/v1/alerts/stream?since=0`, auth())));
      for (const client of clients) client.pause();
      expect(clients.map((c) => c.status())).toEqual(clients.map(() => 200));
      await waitFor(async () => (await openStreams()) === MAX_STREAMS, { what: "the stalled streams open" });
      // Let the replays fill what the kernel and their buffers take.
      await Bun.sleep(1_500);
      return clients;
    };
    // Live alerts keep coming while they do not read: held back, dropped for a re-read, then the clients are dropped.
    let batch = 0;
    const flowUntilDropped = async () => {
      const started = performance.now();
      const dropsBefore = await slowDrops();
      for (let i = 0; i < 10 && (await openStreams()) > 0; i++) {
        await insertAlerts("live", 2_000, `live-${batch++}`);
        await Bun.sleep(100);
      }
      await waitFor(async () => (await openStreams()) === 0, { timeoutMs: 20_000, what: "every stalled stream dropped" });
      expect((await slowDrops()) - dropsBefore).toBe(MAX_STREAMS);
      return performance.now() - started;
    };

    const first = await stallReplays();
    const dropMs = await flowUntilDropped();
    for (const client of first) client.close();
    const peak = await bufferPeak();
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(MAX_BUFFER);

    // Their slots were released: the key can stall as many again. This round (code and connections warm) measures memory.
    Bun.gc(true);
    const rssBefore = process.memoryUsage().rss;
    const heapBefore = jsMemory();
    const second = await stallReplays();
    Bun.gc(true);
    const perStreamMb = (process.memoryUsage().rss - rssBefore) / MAX_STREAMS / 1e6;
    const heapPerStreamMb = (jsMemory() - heapBefore) / MAX_STREAMS / 1e6;
    await flowUntilDropped();
    for (const client of second) client.close();
    expect(await bufferPeak()).toBeLessThanOrEqual(MAX_BUFFER);
    console.log(JSON.stringify({ stalled_streams: MAX_STREAMS, rss_per_stalled_stream_mb: Number(perStreamMb.toFixed(2)), js_memory_per_stalled_stream_mb: Number(heapPerStreamMb.toFixed(2)), buffer_peak_bytes: peak, drop_ms_after_live_flow: Math.round(dropMs) }));
    // What a stalled stream holds: its buffer (1 MiB at most) and one replay page, whatever `since` asked for.
    // (RSS is reported, not asserted: the allocator keeps and returns pages in steps larger than this.)
    expect(heapPerStreamMb).toBeLessThan(3);
  }, 60_000);

  test("a slow reader gets a final `event: error` with its cursor, and resuming from it misses and repeats nothing", async () => {
    const slow = await openRawSse(`${base}/v1/alerts/stream?key=slow`, auth());
    slow.pause();
    await waitFor(async () => (await openStreams()) === 1, { what: "the slow stream open" });
    const dropsBefore = await slowDrops();
    // More than the kernel's socket buffers and the stream's budget together (about 10 MB).
    const written: string[] = [];
    for (let i = 0; i < 10 && (await slowDrops()) === dropsBefore; i++) {
      written.push(...(await insertAlerts("slow", 2_000, `slow-${i}`)));
      await Bun.sleep(100);
    }
    await waitFor(async () => (await slowDrops()) > dropsBefore, { what: "the slow reader dropped" });
    // It reads again (within the server's grace) and gets everything queued, then the final frame.
    slow.resume();
    await waitFor(() => slow.ended(), { timeoutMs: 20_000, what: "the slow stream ended" });
    const last = slow.messages.at(-1);
    expect(last?.event).toBe("error");
    const final = JSON.parse(last?.data ?? "{}") as { reason: string; resume: string; detail: string };
    expect(final.reason).toBe("slow_client");
    expect(final.detail.length).toBeGreaterThan(0);
    const received = slow.alerts();
    expect(final.resume).toBe(received.at(-1)?.id ?? "");
    expect(last?.id).toBe(final.resume);
    slow.close();

    // More alerts arrive after the drop; the resumed stream replays the missed ones, then continues live.
    written.push(...(await insertAlerts("slow", 500, "slow-after")));
    const resumed = openSse(`${base}/v1/alerts/stream?key=slow`, { ...auth(), "last-event-id": final.resume });
    const expectedRest = written.length - received.length;
    await waitFor(() => resumed.alerts().length >= expectedRest, { timeoutMs: 20_000, what: "the resumed stream to catch up" });
    const late = await insertAlerts("slow", 3, "slow-live");
    written.push(...late);
    await waitFor(() => resumed.alerts().length >= expectedRest + late.length, { what: "live alerts after the replay" });
    await Bun.sleep(200);
    const all = [...received, ...resumed.alerts()].map((a) => a.alert.event_id);
    expect(all.length).toBe(written.length);
    expect(all).toEqual(written);
    await resumed.close();
    await waitFor(async () => (await openStreams()) === 0);
  }, 60_000);

  test("live alerts held back past the budget during a replay are read from Postgres instead, for a client that reads", async () => {
    const [{ seq } = { seq: "0" }] = await services.db.sql<{ seq: string }[]>`select coalesce(max(seq), 0) as seq from alerts`;
    // More history than the socket buffers and the stream's budget take (about 8 MB), so the replay waits for the client.
    const written: string[] = [];
    for (let i = 0; i < 4; i++) written.push(...(await insertAlerts("rejoin", 4_000, `rejoin-history-${i}`)));
    const dropsBefore = await slowDrops();
    const client = await openRawSse(`${base}/v1/alerts/stream?key=rejoin&since=${encodeCursor({ q: Number(seq) })}`, auth());
    client.pause();
    await Bun.sleep(1_500);
    // About 1.1 MB of live alerts while it does not read: more than the room left for holding them back (once), then
    // some held back again after those were dropped.
    written.push(...(await insertAlerts("rejoin", 2_500, "rejoin-live")));
    await Bun.sleep(500);
    client.resume();
    await waitFor(() => client.alerts().length >= written.length, { timeoutMs: 20_000, what: "the replay, the re-read and the held-back alerts" });
    const late = await insertAlerts("rejoin", 3, "rejoin-late");
    written.push(...late);
    await waitFor(() => client.alerts().length >= written.length, { what: "live alerts after the replay" });
    await Bun.sleep(200);
    expect(client.alerts().map((a) => a.alert.event_id)).toEqual(written);
    expect(await slowDrops()).toBe(dropsBefore);
    client.close();
    await waitFor(async () => (await openStreams()) === 0);
  }, 60_000);

  test("a live stream opened while no other is open starts at the newest alert, not where the last one left off", async () => {
    await waitFor(async () => (await openStreams()) === 0, { what: "no stream open" });
    // Committed while nobody listens: history, for a replay, not a burst of "live" alerts.
    await insertAlerts("idle", 2_000, "idle-history");
    const live = openSse(`${base}/v1/alerts/stream?key=idle`, auth());
    await waitFor(() => live.messages.some((m) => m.comment === "connected"), { what: "the stream open" });
    const fresh = await insertAlerts("idle", 2, "idle-live");
    await waitFor(() => live.alerts().length >= 2, { what: "the live alerts" });
    await Bun.sleep(300);
    expect(live.alerts().map((a) => a.alert.event_id)).toEqual(fresh);
    await live.close();
    await waitFor(async () => (await openStreams()) === 0);
  });

  test("an API key holds at most SSE_MAX_STREAMS_PER_KEY streams; 429 beyond, a slot frees when a stream ends", async () => {
    const refusalsBefore = await keyLimitRefusals();
    const open = Array.from({ length: MAX_STREAMS }, () => openSse(`${base}/v1/alerts/stream?key=nobody`, auth()));
    await waitFor(() => open.every((s) => s.messages.some((m) => m.comment === "connected")), { what: "the key's streams open" });

    const refused = await fetch(`${base}/v1/alerts/stream`, { headers: auth() });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("content-type")).toContain("application/problem+json");
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(((await refused.json()) as { status: number }).status).toBe(429);
    expect((await keyLimitRefusals()) - refusalsBefore).toBe(1);

    // Another key is not affected.
    const other = openSse(`${base}/v1/alerts/stream?key=nobody`, auth(OTHER));
    await waitFor(() => other.messages.some((m) => m.comment === "connected"), { what: "the other key's stream" });

    await open[0]?.close();
    const next = await waitFor(
      async () => {
        const stream = openSse(`${base}/v1/alerts/stream?key=nobody`, auth());
        await waitFor(() => stream.status() !== 0 || stream.ended());
        if (stream.status() === 200) return stream;
        await stream.close();
        return undefined;
      },
      { what: "a slot freed by the closed stream" },
    );
    await Promise.all([...open.slice(1), other, next].map((s) => s.close()));
    await waitFor(async () => (await openStreams()) === 0);
  });

  test("invalid parameters are refused with 400 problem+json naming each, before any stream starts", async () => {
    const refuse = async (query: string, headers: Record<string, string> = {}) => {
      const response = await fetch(`${base}/v1/alerts/stream${query}`, { headers: { ...auth(), ...headers } });
      expect(response.status).toBe(400);
      expect(response.headers.get("content-type")).toContain("application/problem+json");
      return ((await response.json()) as { errors: { path: string; message: string }[] }).errors.map((e) => e.path).sort();
    };
    expect(await refuse("?key=%00")).toEqual(["key"]);
    expect(await refuse("?key=a%00b")).toEqual(["key"]);
    // A lone surrogate, encoded as its UTF-8-like bytes (not UTF-8).
    expect(await refuse("?key=%ED%A0%80")).toEqual(["key"]);
    expect(await refuse(`?key=${"k".repeat(257)}`)).toEqual(["key"]);
    expect(await refuse("?key=a&key=b")).toEqual(["key"]);
    expect(await refuse("?rule=nope")).toEqual(["rule"]);
    expect(await refuse("?since=not-a-time")).toEqual(["since"]);
    expect(await refuse("?since=9999999999999999")).toEqual(["since"]);
    expect(await refuse("?since=-9999999999999999")).toEqual(["since"]);
    expect(await refuse("?since=2026-02-30T00:00:00Z")).toEqual(["since"]);
    expect(await refuse(`?since=${encodeCursor({ q: -1 })}`)).toEqual(["since"]);
    expect(await refuse(`?since=${encodeCursor({ q: 1.5 })}`)).toEqual(["since"]);
    expect(await refuse(`?since=${encodeCursor({ q: 1, x: 2 })}`)).toEqual(["since"]);
    expect(await refuse("", { "last-event-id": `${encodeCursor({ q: 1 })}x` })).toEqual(["Last-Event-ID"]);
    expect(await refuse("", { "last-event-id": "not a cursor" })).toEqual(["Last-Event-ID"]);
    expect(await refuse("?key=&rule=nope&since=x", { "last-event-id": "bad" })).toEqual(["Last-Event-ID", "rule", "since"]);
    expect(await openStreams()).toBe(0);

    // The valid forms still open a stream.
    for (const query of [`?since=${encodeCursor({ q: 0 })}`, "?since=2026-01-01T00:00:00Z&rule=speeding", `?since=${Date.now()}&key=`]) {
      const ok = openSse(`${base}/v1/alerts/stream${query}`, auth());
      await waitFor(() => ok.messages.some((m) => m.comment === "connected"), { what: `a stream for ${query}` });
      expect(ok.status()).toBe(200);
      await ok.close();
    }
    await waitFor(async () => (await openStreams()) === 0);
  });
});
