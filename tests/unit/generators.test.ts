import { describe, expect, test } from "bun:test";
import { domains } from "../../generators/domains/index.ts";
import { createSender } from "../../generators/sender.ts";
import { createStats } from "../../generators/stats.ts";
import { createEventStream, noFaults } from "../../generators/stream.ts";
import { defaultEventTimePolicy, eventTypes, validateRecord } from "../../lib/events/index.ts";

const START = Date.parse("2026-11-21T10:00:00Z");
const validate = (event: Record<string, unknown>) => validateRecord(event, { types: eventTypes, now: START + 3_600_000, policy: defaultEventTimePolicy, newEventId: () => "x" });

describe.each([...domains.keys()])("simulator %s", (name) => {
  const domain = domains.get(name);
  if (!domain) throw new Error(name);
  const stream = (seed: number, faults = noFaults) => createEventStream({ domain, devices: 25, seed, rate: 100, startTime: START, faults });

  test("the same seed gives the same events, ids and times included; another seed differs", () => {
    const a = stream(7).take(500);
    expect(stream(7).take(500)).toEqual(a);
    expect(stream(8).take(500)).not.toEqual(a);
    expect(a[1]?.event_time).toBe(START + 10);
  });

  test("without faults every event passes the contract's validation", () => {
    for (const event of stream(3).take(2_000)) {
      const result = validate(event);
      if (!result.ok) throw new Error(`${JSON.stringify(event)}: ${JSON.stringify(result.errors)}`);
    }
  });

  test("fault injection: invalid records fail validation, duplicates repeat ids, late events lie 3–10 min back", () => {
    const events = stream(5, { lateFraction: 0.1, outOfOrder: 0, duplicates: 0.1, invalidFraction: 0.1 }).take(3_000);
    const invalid = events.filter((e) => !validate(e).ok).length;
    expect(invalid).toBeGreaterThan(150);
    expect(invalid).toBeLessThan(450);
    const ids = events.map((e) => e.event_id);
    expect(ids.length - new Set(ids).size).toBeGreaterThan(150);
    const expected = (i: number) => START + Math.round((i * 1000) / 100);
    const lateness = events.filter((e) => !ids.slice(0, ids.indexOf(e.event_id)).includes(e.event_id)).map((e) => expected(Number(String(e.event_id).split("-").pop())) - e.event_time);
    expect(lateness.filter((l) => l >= 3 * 60_000 && l <= 10 * 60_000).length).toBeGreaterThan(150);
  });
});

test("the vehicle simulator's dims cover models, the Black/White/Silver colours, and every car it drives", () => {
  const vehicle = domains.get("vehicle");
  if (!vehicle) throw new Error("vehicle");
  const { dims, take } = createEventStream({ domain: vehicle, devices: 30, seed: 1, rate: 10, startTime: START, faults: noFaults });
  expect(dims.car_colors?.map((c) => c.color_name)).toEqual(expect.arrayContaining(["Black", "White", "Silver"]));
  const carIds = new Set(dims.cars?.map((c) => c.car_id));
  expect(carIds.size).toBe(30);
  for (const event of take(300)) expect(carIds.has(event.car_id as number)).toBe(true);
  const modelIds = new Set(dims.car_models?.map((m) => m.model_id));
  for (const car of dims.cars ?? []) expect(modelIds.has(car.model_id as number)).toBe(true);
});

describe("the sender's --gzip option", () => {
  /** A stand-in gateway that records what it receives and answers like the real one. */
  async function capture(gzip: boolean | undefined) {
    const seen: { encoding: string | null; type: string | null; bytes: Uint8Array<ArrayBuffer> }[] = [];
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      async fetch(request) {
        seen.push({ encoding: request.headers.get("content-encoding"), type: request.headers.get("content-type"), bytes: new Uint8Array(await request.arrayBuffer()) });
        return Response.json({ accepted: 2, rejected: 0, event_ids: [], errors: [] }, { status: 202 });
      },
    });
    try {
      const iot = domains.get("iot");
      if (!iot) throw new Error("iot");
      const stats = createStats();
      const batch = createEventStream({ domain: iot, devices: 2, seed: 1, rate: 10, startTime: START, faults: noFaults }).take(2);
      await createSender({ url: `http://127.0.0.1:${server.port}`, key: "k", gzip }, stats)(batch);
      return { seen, batch, stats };
    } finally {
      await server.stop(true);
    }
  }

  test("with gzip, each body is gzip-compressed JSON sent with Content-Encoding: gzip", async () => {
    const { seen, batch, stats } = await capture(true);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.encoding).toBe("gzip");
    expect(seen[0]?.type).toBe("application/json");
    const bytes = seen[0]?.bytes ?? new Uint8Array(0);
    expect([bytes[0], bytes[1]]).toEqual([0x1f, 0x8b]);
    expect(JSON.parse(new TextDecoder().decode(Bun.gunzipSync(bytes)))).toEqual(JSON.parse(JSON.stringify(batch)));
    expect(stats.totals.accepted).toBe(2);
  });

  test("without it, the body is plain JSON and no Content-Encoding is sent", async () => {
    const { seen, batch } = await capture(undefined);
    expect(seen[0]?.encoding).toBeNull();
    expect(JSON.parse(new TextDecoder().decode(seen[0]?.bytes))).toEqual(JSON.parse(JSON.stringify(batch)));
  });
});

test("a simulation's latency percentiles are the nearest-rank ones to within 2 %, in fixed memory", () => {
  const stats = createStats();
  expect(stats.percentiles()).toEqual({ p50_ms: 0, p99_ms: 0 });
  // 1..1000 ms, shuffled: exact nearest-rank p50 = 501 ms, p99 = 991 ms.
  const latencies = Array.from({ length: 1_000 }, (_, i) => i + 1);
  for (let i = latencies.length - 1; i > 0; i--) {
    const j = (i * 7919) % (i + 1);
    [latencies[i], latencies[j]] = [latencies[j] as number, latencies[i] as number];
  }
  for (const ms of latencies) stats.latency(ms);
  const { p50_ms, p99_ms } = stats.percentiles();
  expect(p50_ms).toBeGreaterThanOrEqual(501);
  expect(p50_ms).toBeLessThanOrEqual(501 * 1.02);
  expect(p99_ms).toBeGreaterThanOrEqual(991);
  expect(p99_ms).toBeLessThanOrEqual(991 * 1.02);
  // Sub-resolution and very long latencies land in the end buckets instead of being lost.
  const extremes = createStats();
  for (const ms of [0, 0, 1e12]) extremes.latency(ms);
  expect(extremes.percentiles().p50_ms).toBe(0.01);
  expect(extremes.percentiles().p99_ms).toBeGreaterThan(1e9);
});
