import { expect, test } from "bun:test";
import { createBatcher } from "../../lib/bus/batcher.ts";
import type { Bus, OutgoingRecord, ProducedRecord } from "../../lib/bus/types.ts";
import { BusUnavailableError } from "../../lib/errors.ts";

/**
 * The batcher's coalescing, against a bus whose produces the test completes by hand (what the batcher
 * sends, and when it hears back, is all that is under test here; the buses have their own suites).
 */
function handBus() {
  const calls: { records: OutgoingRecord[]; done: PromiseWithResolvers<ProducedRecord[]> }[] = [];
  let next = 0;
  const bus = {
    produce(_topic: string, records: OutgoingRecord[]) {
      const done = Promise.withResolvers<ProducedRecord[]>();
      calls.push({ records, done });
      return done.promise;
    },
  } as unknown as Bus;
  const confirm = (i: number) => {
    const call = calls[i];
    if (!call) throw new Error(`no produce #${i}`);
    call.done.resolve(call.records.map(() => ({ partition: 0, offset: next++ })));
  };
  return { bus, calls, confirm };
}

const rec = (key: string): OutgoingRecord => ({ key, value: new TextEncoder().encode(key) });
const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

test("an idle batcher sends at the end of the tick; while maxInFlight batches are out, what arrives goes out together when one is confirmed", async () => {
  const { bus, calls, confirm } = handBus();
  const batcher = createBatcher(bus, "t", { lingerMs: 0, maxBatchRecords: 1_000, maxPendingBytes: 1 << 20, maxInFlight: 2 });
  const a = batcher.send([rec("a")]);
  const b = batcher.send([rec("b")]);
  await tick();
  expect(calls.map((c) => c.records.map((r) => r.key))).toEqual([["a", "b"]]);
  const c = batcher.send([rec("c")]);
  await tick();
  expect(calls).toHaveLength(2);
  // Two batches out: these wait.
  const d = batcher.send([rec("d")]);
  const e = batcher.send([rec("e"), rec("f")]);
  await tick();
  expect(calls).toHaveLength(2);
  confirm(0);
  await tick();
  expect(calls.map((x) => x.records.map((r) => r.key))).toEqual([["a", "b"], ["c"], ["d", "e", "f"]]);
  expect((await a).map((p) => p.offset)).toEqual([0]);
  expect((await b).map((p) => p.offset)).toEqual([1]);
  confirm(1);
  confirm(2);
  expect((await c).map((p) => p.offset)).toEqual([2]);
  expect((await d).map((p) => p.offset)).toEqual([3]);
  expect((await e).map((p) => p.offset)).toEqual([4, 5]);
});

test("a full batch goes at once; a failed produce rejects exactly its callers; the byte budget refuses at once", async () => {
  const { bus, calls, confirm } = handBus();
  const batcher = createBatcher(bus, "t", { lingerMs: 50, maxBatchRecords: 3, maxPendingBytes: 8, maxInFlight: 1 });
  const full = batcher.send([rec("a"), rec("b"), rec("c")]);
  expect(calls).toHaveLength(1);
  const later = batcher.send([rec("d")]);
  await expect(batcher.send([rec("0123456789")])).rejects.toBeInstanceOf(BusUnavailableError);
  calls[0]?.done.reject(new BusUnavailableError("broker down"));
  await expect(full).rejects.toThrow("broker down");
  // The linger still applies to what waited.
  await Bun.sleep(80);
  expect(calls).toHaveLength(2);
  confirm(1);
  expect((await later).map((p) => p.offset)).toEqual([0]);
});
