import { expect, test } from "bun:test";
import { AppError } from "../../lib/errors.ts";
import { backoffDelay, retry } from "../../lib/retry.ts";

const fast = { retries: 4, initialDelayMs: 1, maxDelayMs: 2 };

test("retries a retriable error until it succeeds", async () => {
  let calls = 0;
  const result = await retry(async () => {
    calls++;
    if (calls < 3) throw new AppError("flaky", "try again", { retriable: true });
    return "done";
  }, fast);
  expect(result).toBe("done");
  expect(calls).toBe(3);
});

test("does not retry an error that is not retriable", async () => {
  let calls = 0;
  const failing = retry(async () => {
    calls++;
    throw new AppError("bad_request", "never works");
  }, fast);
  await expect(failing).rejects.toThrow("never works");
  expect(calls).toBe(1);
});

test("gives up after the configured retries with the last error", async () => {
  let calls = 0;
  await expect(
    retry(async () => {
      calls++;
      throw new AppError("down", `attempt ${calls}`, { retriable: true });
    }, fast),
  ).rejects.toThrow("attempt 5");
  expect(calls).toBe(5);
});

test("backoff is jittered below an exponentially growing, capped ceiling", () => {
  const options = { initialDelayMs: 100, maxDelayMs: 1_000 };
  expect(backoffDelay(0, options, () => 0.999)).toBe(99);
  expect(backoffDelay(3, options, () => 0.999)).toBe(799);
  expect(backoffDelay(10, options, () => 0.999)).toBe(999);
  expect(backoffDelay(10, options, () => 0)).toBe(0);
});
