import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Batch } from "../../lib/bus/types.ts";
import type { Tx } from "../../lib/db/index.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { runJob, type StreamJob } from "../../workers/runner.ts";
import { serviceSetups } from "../support/setups.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * A worker whose partitions were committed by another owner while it held uncommitted results (a
 * rebalance whose revoke and assign raced across processes) must not commit them: its transaction is
 * fenced by the positions in job_offsets, and it resumes from what the other owner committed.
 */
// Services mode only: the race needs two owners in separate processes, and the embedded database (one
// PGlite connection) serialises every transaction, so there the test's "other owner" could not commit
// while the worker's transaction is open.
const setups = { kafka: serviceSetups({}).kafka };

for (const [name, setup] of Object.entries(setups)) {
  describe(`position fencing on ${name}`, () => {
    const dir = tempDir("devpipe-fencing-");
    let services: Services;
    let drop: () => Promise<void>;
    const jobName = `fence-${crypto.randomUUID().slice(0, 8)}`;
    beforeAll(async () => {
      ({ services, drop } = await setup(dir.path));
      await services.db.sql`create table if not exists fence_results (job text, value text)`;
    });
    afterAll(async () => {
      await closeServices(services);
      await drop();
      dir.remove();
    });

    test("a checkpoint over positions another owner moved commits nothing; the worker resumes after them", async () => {
      const { sql } = services.db;
      const topic = services.topics.late;
      const start = await services.bus.endOffsets(topic);
      let pending: string[] = [];
      let release: () => void = () => undefined;
      let gate: Promise<void> | undefined = new Promise<void>((resolve) => {
        release = resolve;
      });
      let gateReached = false;
      const job: StreamJob = {
        name: jobName,
        input: topic,
        process(batch: Batch) {
          for (const r of batch.records) pending.push(new TextDecoder().decode(r.value));
        },
        pending: () => pending.length,
        async checkpoint(tx: Tx) {
          const values = pending;
          for (const value of values) await tx`insert into fence_results (job, value) values (${jobName}, ${value})`;
          if (gate) {
            gateReached = true;
            await gate;
          }
          return () => {
            pending = pending.slice(values.length);
          };
        },
        reset() {
          pending = [];
        },
      };
      // Positions start where the topic ends now, as if an earlier owner had committed them.
      for (const s of start) await sql`insert into job_offsets (job, topic, partition, next_offset) values (${jobName}, ${topic}, ${s.partition}, ${s.offset})`;
      const running = await runJob(job, services, { commitIntervalMs: 50 });
      try {
        await services.bus.produce(topic, Array.from({ length: 8 }, (_, i) => ({ key: `k${i}`, value: new TextEncoder().encode(`first-${i}`) })));
        await waitFor(() => gateReached, { what: "the first checkpoint to hold its transaction open" });
        // Meanwhile another owner processed the same records and committed past them.
        const ends = await services.bus.endOffsets(topic);
        for (const e of ends) await sql`update job_offsets set next_offset = ${e.offset}, updated_at = now() where job = ${jobName} and topic = ${topic} and partition = ${e.partition}`;
        gate = undefined;
        release();
        await services.bus.produce(topic, Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, value: new TextEncoder().encode(`second-${i}`) })));
        const rows = await waitFor(async () => {
          const found = await sql<{ value: string }[]>`select value from fence_results where job = ${jobName} order by value`;
          return found.length >= 5 ? found : undefined;
        }, { what: "the records after the fence committed" });
        // Nothing more arrives later: the fenced results are gone for good.
        await Bun.sleep(300);
        const final = await sql<{ value: string }[]>`select value from fence_results where job = ${jobName} order by value`;
        expect(final.map((r) => r.value)).toEqual(["second-0", "second-1", "second-2", "second-3", "second-4"]);
        expect(rows.length).toBe(5);
      } finally {
        release();
        await running.stop();
      }
    });
  });
}
