import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeServices, readiness, type Services } from "../../lib/services.ts";
import { serviceSetups } from "../support/setups.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * /readyz tells the truth about the jobs: records waiting in a job's input while its committed position
 * (job_offsets, shared by every worker process) stands still for READY_STALL_MS make it fail, naming the
 * job; progress makes it pass again.
 */
const setups = serviceSetups({ READY_STALL_MS: "1000" });

for (const [name, setup] of Object.entries(setups)) {
  describe(`readiness on ${name}`, () => {
    const dir = tempDir("devpipe-ready-");
    let services: Services;
    let drop: () => Promise<void>;
    beforeAll(async () => {
      ({ services, drop } = await setup(dir.path));
    });
    afterAll(async () => {
      await closeServices(services);
      await drop();
      dir.remove();
    });

    const commitPositions = async (job: string, topic: string) => {
      for (const end of await services.bus.endOffsets(topic)) {
        await services.db.sql`insert into job_offsets (job, topic, partition, next_offset) values (${job}, ${topic}, ${end.partition}, ${end.offset})
                              on conflict (job, topic, partition) do update set next_offset = excluded.next_offset, updated_at = now()`;
      }
    };

    test("a job with records waiting and no progress is named; progress clears it", async () => {
      await commitPositions("lake", services.topics.raw);
      expect((await readiness(services)).checks.jobs).toEqual({ status: "ok" });
      await services.bus.produce(services.topics.raw, [{ key: "k", value: new TextEncoder().encode("{}") }]);
      // Seen behind once, then still behind with the same position past the threshold.
      expect((await readiness(services)).checks.jobs).toEqual({ status: "ok" });
      const error = await waitFor(async () => {
        const { ready, checks } = await readiness(services);
        return !ready && checks.jobs.status === "failing" ? checks.jobs.error : undefined;
      }, { timeoutMs: 10_000, intervalMs: 200, what: "the stalled job named" });
      expect(error).toMatch(/^lake: 1 records waiting on .*events\.raw\/\d+ with no progress for \d+ s$/);

      await commitPositions("lake", services.topics.raw);
      expect(await readiness(services)).toMatchObject({ ready: true, checks: { jobs: { status: "ok" } } });
    });

    test("a job that never committed is absent, not stalled", async () => {
      await services.bus.produce(services.topics.raw, [{ key: "k", value: new TextEncoder().encode("{}") }]);
      await Bun.sleep(1_200);
      expect((await readiness(services)).checks.jobs).toEqual({ status: "ok" });
    });
  });
}
