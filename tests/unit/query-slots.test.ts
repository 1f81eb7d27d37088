import { expect, test } from "bun:test";
import { QueryRejectedError } from "../../lib/errors.ts";
import { createQuerySlots } from "../../lib/lake/query-slots.ts";

const settled = async (promise: Promise<unknown>) => {
  let state = "pending";
  promise.then(
    () => (state = "granted"),
    () => (state = "rejected"),
  );
  await Bun.sleep(0);
  return state;
};

test("slots: maxConcurrent run, the next wait first come first served, the rest are rejected with a retry hint", async () => {
  const slots = createQuerySlots({ maxConcurrent: 2, maxQueued: 1, queueTimeoutMs: 60_000 });
  const a = await slots.acquire("a");
  const b = await slots.acquire("b");
  const waiting = slots.acquire("c");
  expect(await settled(waiting)).toBe("pending");
  const rejected = await slots.acquire("d").catch((e: unknown) => e);
  expect(rejected).toBeInstanceOf(QueryRejectedError);
  expect((rejected as QueryRejectedError).retryAfterS).toBeGreaterThanOrEqual(1);
  expect(slots.state()).toEqual({ running: 2, queued: 1 });
  a();
  a(); // releasing twice frees one slot only
  expect(await settled(waiting)).toBe("granted");
  expect(slots.state()).toEqual({ running: 2, queued: 0 });
  b();
  (await waiting)();
  expect(slots.state()).toEqual({ running: 0, queued: 0 });
});

test("slots: one client holds at most all but one slot, even while the last is free", async () => {
  const slots = createQuerySlots({ maxConcurrent: 3, maxQueued: 5, queueTimeoutMs: 60_000 });
  const first = await slots.acquire("greedy");
  await slots.acquire("greedy");
  const third = slots.acquire("greedy");
  expect(await settled(third)).toBe("pending");
  // The free slot is another client's at once, ahead of the greedy one's waiting query.
  const other = slots.acquire("other");
  expect(await settled(other)).toBe("granted");
  (await other)();
  expect(await settled(third)).toBe("pending");
  first();
  expect(await settled(third)).toBe("granted");
});

test("slots: a single slot is the only client's; a wait past queueTimeoutMs is rejected", async () => {
  const slots = createQuerySlots({ maxConcurrent: 1, maxQueued: 4, queueTimeoutMs: 50 });
  const only = await slots.acquire("a");
  const started = performance.now();
  const late = await slots.acquire("b").catch((e: unknown) => e);
  expect(late).toBeInstanceOf(QueryRejectedError);
  expect(performance.now() - started).toBeGreaterThanOrEqual(45);
  expect(slots.state()).toEqual({ running: 1, queued: 0 });
  only();
  (await slots.acquire("a"))();
});
