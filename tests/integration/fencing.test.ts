import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { partitionFor } from "../../lib/bus/partitioner.ts";
import type { Tx } from "../../lib/db/index.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { runChain } from "../../workers/jobs.ts";
import type { ChainBatch } from "../../workers/chain/types.ts";
import type { StreamJob } from "../../workers/runner.ts";
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
        process(batch: ChainBatch) {
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
      const stop = await runChain([{ job, options: { commitIntervalMs: 50 } }], services, `${services.config.topicPrefix}${job.name}`);
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
        await stop();
      }
    });

    test("a fence that moves the position back resumes there: batches fetched before the seek are not applied past the gap", async () => {
      const { sql } = services.db;
      const name = `${jobName}-gap`;
      const topic = services.topics.late;
      // Every record on one partition: the one the key "gap" goes to.
      const partition = partitionFor("gap", (await services.bus.endOffsets(topic)).length);
      const startAt = (await services.bus.endOffsets(topic)).find((e) => e.partition === partition)?.offset ?? 0;
      const committed = new Map<number, number>();
      let pending: number[] = [];
      let fenceAt: number | undefined;
      const job: StreamJob = {
        name,
        input: topic,
        process(batch: ChainBatch) {
          if (batch.partition === partition) for (const r of batch.records) pending.push(r.offset);
        },
        pending: () => pending.length,
        async checkpoint() {
          const sending = pending;
          // A slow sink: batches queue behind the checkpoint while it runs.
          await Bun.sleep(200);
          if (fenceAt === undefined && sending.length > 0 && Math.max(...sending) >= startAt + 500) {
            // Another owner commits a position inside what this worker processed and has not committed.
            fenceAt = Math.min(...sending) + 50;
            await sql`update job_offsets set next_offset = ${fenceAt} where job = ${name} and topic = ${topic} and partition = ${partition}`;
          }
          return () => {
            for (const o of sending) committed.set(o, (committed.get(o) ?? 0) + 1);
            pending = pending.slice(sending.length);
          };
        },
        reset() {
          pending = [];
        },
      };
      for (const e of await services.bus.endOffsets(topic)) await sql`insert into job_offsets (job, topic, partition, next_offset) values (${name}, ${topic}, ${e.partition}, ${e.offset})`;
      const stop = await runChain([{ job, options: { commitIntervalMs: 50 } }], services, `${services.config.topicPrefix}${job.name}`);
      const total = 1_500;
      try {
        for (let i = 0; i < total; i += 50) {
          await services.bus.produce(topic, Array.from({ length: 50 }, (_, k) => ({ key: "gap", value: new TextEncoder().encode(String(i + k)) })));
          await Bun.sleep(10);
        }
        const last = startAt + total - 1;
        await waitFor(() => committed.has(last), { timeoutMs: 30_000, what: "the last record committed" });
      } finally {
        await stop();
      }
      expect(fenceAt).toBeDefined();
      // From the fence on, every offset is applied exactly once: none skipped by a stale batch, none twice.
      const after = Array.from({ length: startAt + total - (fenceAt ?? 0) }, (_, i) => (fenceAt ?? 0) + i);
      expect(after.filter((o) => committed.get(o) !== 1)).toEqual([]);
    }, 60_000);
  });
}
