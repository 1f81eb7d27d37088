import { expect, test } from "bun:test";
import { byteChunks } from "../../lib/bus/kafka.ts";
import type { OutgoingRecord } from "../../lib/bus/types.ts";

const records = (sizes: number[]): OutgoingRecord[] => sizes.map((size) => ({ key: "", value: new Uint8Array(size) }));
/** Bytes byteChunks counts for a record: value, key and 64 bytes of framing. */
const framed = (size: number) => size + 64;

test("records spread over partitions share a request until one partition reaches its limit", () => {
  // Four partitions of 300 framed bytes each fit a 400-byte partition limit: one request.
  const spread = records([236, 236, 236, 236]);
  expect(byteChunks(spread, [0, 1, 2, 3], 400, 10_000)).toEqual([[0, 4]]);
  // The same records on one partition need one request each.
  expect(byteChunks(spread, [0, 0, 0, 0], framed(236) + 1, 10_000)).toEqual([[0, 1], [1, 2], [2, 3], [3, 4]]);
});

test("the request limit splits too, in order, and every range holds at least one record", () => {
  const many = records([100, 100, 100, 100, 100]);
  expect(byteChunks(many, [0, 1, 2, 3, 4], 10_000, 2 * framed(100))).toEqual([[0, 2], [2, 4], [4, 5]]);
  // A record over both limits still goes out, alone.
  expect(byteChunks(records([50, 5_000, 50]), [0, 0, 0], 1_000, 1_000)).toEqual([[0, 1], [1, 2], [2, 3]]);
  expect(byteChunks([], [], 1_000, 1_000)).toEqual([]);
});
