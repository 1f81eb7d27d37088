import { expect, test } from "bun:test";
import { backoffDelay } from "../../lib/retry.ts";

test("backoff is jittered below an exponentially growing, capped ceiling", () => {
  const options = { initialDelayMs: 100, maxDelayMs: 1_000 };
  expect(backoffDelay(0, options, () => 0.999)).toBe(99);
  expect(backoffDelay(3, options, () => 0.999)).toBe(799);
  expect(backoffDelay(10, options, () => 0.999)).toBe(999);
  expect(backoffDelay(10, options, () => 0)).toBe(0);
});
