import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { startGateway } from "../../api/server.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { jobs } from "../../workers/jobs.ts";
import { freePort } from "../support/process.ts";
import { serviceSetups } from "../support/setups.ts";
import { openSse } from "../support/sse.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/** GET /v1/alerts/stream on a real HTTP server, fed by the enrich and alerts jobs (embedded services). */
const KEY = "stream-key";
const dir = tempDir("devpipe-sse-");
let services: Services;
let gateway: Awaited<ReturnType<typeof startGateway>>;
let stops: (() => Promise<void>)[] = [];
let base: string;
const auth = { authorization: `Bearer ${KEY}` };
let sequence = 0;

const post = async (events: Record<string, unknown>[]) => {
  const response = await fetch(`${base}/v1/events`, { method: "POST", body: JSON.stringify(events), headers: { ...auth, "content-type": "application/json" } });
  expect(response.status).toBe(202);
};
/** A telemetry event that raises `speeding` (and only that) for car `car`. */
const speeding = (car: number) => ({ type: "vehicle.telemetry", event_id: `sse-${car}-${sequence++}`, car_id: car, speed: 150, rpm: 3000, gear: 5, event_time: new Date(Date.now() - 1_000).toISOString() });
const highRpm = (car: number) => ({ type: "vehicle.telemetry", event_id: `sse-${car}-${sequence++}`, car_id: car, speed: 60, rpm: 7000, gear: 2, event_time: new Date(Date.now() - 1_000).toISOString() });
const sseClients = async () => Number(/^devpipe_sse_clients (\d+)$/m.exec(await (await fetch(`${base}/metrics`)).text())?.[1] ?? -1);

beforeAll(async () => {
  const setup = serviceSetups({ PORT: String(freePort()), API_KEYS: `${KEY}:ingest+query`, SSE_HEARTBEAT_MS: "300", HTTP_IDLE_TIMEOUT_S: "1", SSE_MAX_BUFFER_BYTES: "65536" }).embedded;
  ({ services } = await setup(dir.path));
  stops = await Promise.all([jobs.enrich, jobs.alerts].map((job) => job?.start(services, { commitIntervalMs: 25 }) ?? Promise.reject(new Error("job missing"))));
  gateway = await startGateway(services);
  base = gateway.url;
});
afterAll(async () => {
  await gateway.stop();
  await Promise.all(stops.map((stop) => stop()));
  await closeServices(services);
  dir.remove();
});

describe("alert stream", () => {
  test("delivers live alerts as `event: alert` with an id cursor, filtered by key and rule", async () => {
    const all = openSse(`${base}/v1/alerts/stream`, auth);
    const oneCar = openSse(`${base}/v1/alerts/stream?key=101`, auth);
    const rpmOnly = openSse(`${base}/v1/alerts/stream?rule=high_rpm`, auth);
    await waitFor(() => [all, oneCar, rpmOnly].every((s) => s.messages.some((m) => m.comment === "connected")), { what: "three streams connected" });
    const events = [speeding(101), speeding(102), highRpm(101)];
    await post(events);
    await waitFor(() => all.alerts().length === 3, { what: "three alerts on the unfiltered stream" });
    // Commit order; events of different cars are in different partitions, so compare as sets.
    expect(all.alerts().map((a) => a.alert.event_id).sort()).toEqual(events.map((e) => e.event_id).sort());
    expect(all.alerts().every((a) => a.id.length > 0)).toBe(true);
    await waitFor(() => oneCar.alerts().length === 2 && rpmOnly.alerts().length === 1, { what: "the filtered streams" });
    expect(oneCar.alerts().every((a) => a.alert.key === "101")).toBe(true);
    expect(rpmOnly.alerts()[0]?.alert.rules).toEqual(["high_rpm"]);
    await Promise.all([all.close(), oneCar.close(), rpmOnly.close()]);
  });

  test("Last-Event-ID and ?since replay what was missed, then continue live with no gap or repeat", async () => {
    const first = openSse(`${base}/v1/alerts/stream?key=201`, auth);
    await waitFor(() => first.messages.some((m) => m.comment === "connected"));
    await post([speeding(201)]);
    const [seen] = await waitFor(() => (first.alerts().length === 1 ? first.alerts() : undefined), { what: "the first alert" });
    await first.close();

    const missed = [speeding(201), speeding(201), speeding(201)];
    await post(missed);
    await waitFor(async () => (await services.db.sql`select 1 from alerts where event_id = ${missed[2]?.event_id ?? ""}`).length === 1, { what: "the missed alerts committed" });
    const resumed = openSse(`${base}/v1/alerts/stream?key=201`, { ...auth, "last-event-id": seen?.id ?? "" });
    // Alerts keep arriving while the replay runs: the seam must neither drop nor repeat them.
    const during = Array.from({ length: 5 }, () => speeding(201));
    for (const event of during) await post([event]);
    const expected = [...missed, ...during].map((e) => e.event_id);
    await waitFor(() => resumed.alerts().length >= expected.length, { what: "replayed and live alerts" });
    await Bun.sleep(200);
    expect(resumed.alerts().map((a) => a.alert.event_id)).toEqual(expected);

    const bySince = openSse(`${base}/v1/alerts/stream?key=201&since=${encodeURIComponent(seen?.id ?? "")}`, auth);
    await waitFor(() => bySince.alerts().length >= expected.length, { what: "the same replay by ?since" });
    expect(bySince.alerts().map((a) => a.alert.event_id)).toEqual(expected);
    const byTime = openSse(`${base}/v1/alerts/stream?key=201&since=${Date.now() - 3_600_000}`, auth);
    await waitFor(() => byTime.alerts().length >= expected.length + 1, { what: "a replay from a time" });
    expect(byTime.alerts().map((a) => a.alert.event_id)).toEqual([seen?.alert.event_id ?? "", ...expected]);
    await Promise.all([resumed.close(), bySince.close(), byTime.close()]);

    const bad = await fetch(`${base}/v1/alerts/stream?since=not-a-time&rule=nope`, { headers: auth });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { errors: { path: string }[] }).errors.map((e) => e.path).sort()).toEqual(["rule", "since"]);
    expect((await fetch(`${base}/v1/alerts/stream`)).status).toBe(401);
  });

  test("a quiet stream gets heartbeats and outlives the server's idle timeout; a closed one frees its place", async () => {
    const quiet = openSse(`${base}/v1/alerts/stream?key=nobody`, auth);
    await waitFor(() => quiet.messages.some((m) => m.comment === "connected"));
    await waitFor(async () => (await sseClients()) === 1, { what: "only this stream open (the earlier ones closed)" });
    // HTTP_IDLE_TIMEOUT_S is 1 here: an ordinary idle connection would be gone well before this.
    await Bun.sleep(2_500);
    expect(quiet.ended()).toBe(false);
    expect(quiet.messages.filter((m) => m.comment === "heartbeat").length).toBeGreaterThanOrEqual(5);
    await quiet.close();
    await waitFor(async () => (await sseClients()) === 0, { what: "the closed stream unsubscribed" });
  });

  test("a client that stops reading is disconnected once its buffer is full, without holding memory", async () => {
    const url = new URL(base);
    const socket = connect({ host: url.hostname === "localhost" ? "127.0.0.1" : url.hostname, port: Number(url.port) });
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write(`GET /v1/alerts/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n\r\n`);
    // Read the headers, then stop reading: the kernel buffers fill and the server's writes back up.
    await new Promise<void>((resolve) => socket.once("data", () => resolve()));
    socket.pause();
    await waitFor(async () => (await sseClients()) === 1);
    // Many large alerts at once (written as the alerts job would; 3 KB each).
    await services.db.sql`
      insert into alerts (alert_id, event_id, type, key, event_time, rules, event)
      select gen_random_uuid(), 'flood-' || i, 'vehicle.telemetry', 'flood', now(), array['speeding'], jsonb_build_object('padding', repeat('x', 3000))
      from generate_series(1, 4000) i`;
    await waitFor(async () => (await sseClients()) === 0, { timeoutMs: 20_000, what: "the slow client dropped" });
    socket.destroy();
  });

  test("shutdown ends every stream with a final `shutdown` event", async () => {
    // Filtered, so the flood of the test before cannot fill its buffer first.
    const open = openSse(`${base}/v1/alerts/stream?key=nobody`, auth);
    await waitFor(() => open.messages.some((m) => m.comment === "connected"));
    await gateway.stop();
    await waitFor(() => open.ended(), { what: "the stream ended" });
    expect(open.messages.at(-1)?.event).toBe("shutdown");
    gateway = await startGateway(services);
  });
});
