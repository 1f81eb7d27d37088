import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { partitionFor } from "../../lib/bus/partitioner.ts";
import { encodeEnvelope, type Envelope } from "../../lib/events/index.ts";
import { closeServices, type Services } from "../../lib/services.ts";
import { replaceDimension } from "../../lib/store/dims.ts";
import { runChain } from "../../workers/jobs.ts";
import type { ChainBatch, ChainRecord } from "../../workers/chain/types.ts";
import { enrichedValue } from "../../workers/chain/types.ts";
import type { StreamJob } from "../../workers/runner.ts";
import { serviceSetups } from "../support/setups.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/**
 * The operator chain on both buses: one consumer of events.raw feeds every operator from its own committed
 * position, each record once; repeats reach no operator; a record that is no envelope is dead-lettered by
 * the first operator only; telemetry reaches every operator enriched.
 */
for (const [name, setup] of Object.entries(serviceSetups({}))) {
  describe(`operator chain on ${name}`, () => {
    const dir = tempDir("devpipe-chain-");
    let services: Services;
    let drop: () => Promise<void>;
    beforeAll(async () => {
      ({ services, drop } = await setup(dir.path));
      await replaceDimension(services.db.sql, "car_colors", [{ color_id: 1, color_name: "Black" }]);
      await replaceDimension(services.db.sql, "car_models", [{ model_id: 1, car_brand: "Volvo", car_model: "V60" }]);
      await replaceDimension(services.db.sql, "cars", [{ car_id: 7, driver_id: 70, model_id: 1, color_id: 1 }]);
    });
    afterAll(async () => {
      await closeServices(services);
      await drop();
      dir.remove();
    });

    /** An operator that keeps what it was handed, committing nothing but its positions. */
    const recorder = (jobName: string) => {
      const seen: ChainRecord[] = [];
      const dead: number[] = [];
      const job: StreamJob = {
        name: jobName,
        input: services.topics.raw,
        process(batch: ChainBatch) {
          for (const record of batch.records) {
            seen.push(record);
            // Flagged for this operator's runner, which dead-letters it.
            if (record.undecodable) dead.push(record.offset);
          }
        },
        pending: () => 0,
        async checkpoint() {},
        reset() {},
      };
      return { job, seen, dead };
    };

    test("each operator from its own position, each record once; repeats and junk reach no operator as events", async () => {
      const run = crypto.randomUUID().slice(0, 8);
      const key = `${run}-k`;
      const partitions = (await services.bus.endOffsets(services.topics.raw)).length;
      const partition = partitionFor(key, partitions);
      const start = (await services.bus.endOffsets(services.topics.raw)).find((e) => e.partition === partition)?.offset ?? 0;
      const reading = (i: number, id = `${run}-${i}`): Envelope => ({ type: "sensor.reading", key, event_id: id, event_time: Date.now(), ingest_time: Date.now(), payload: { sensor_id: key, temperature: 20, humidity: 50 } });
      const telemetry: Envelope = { type: "vehicle.telemetry", key, event_id: `${run}-car`, event_time: Date.now(), ingest_time: Date.now(), payload: { car_id: 7, speed: 90, rpm: 2_000, gear: 3 } };
      // 0-9 readings, 10 a repeat of 3, 11 junk, 12 telemetry, 13-19 readings.
      const records = [
        ...Array.from({ length: 10 }, (_, i) => reading(i)),
        reading(10, `${run}-3`),
        undefined,
        telemetry,
        ...Array.from({ length: 7 }, (_, i) => reading(13 + i)),
      ].map((e) => ({ key, value: e ? encodeEnvelope(e) : new TextEncoder().encode("not an envelope") }));
      await services.bus.produce(services.topics.raw, records);

      const ahead = recorder(`chain-ahead-${run}`);
      const behind = recorder(`chain-behind-${run}`);
      // `ahead` committed up to offset start+15 before, `behind` is at start; on the other partitions both are at the end.
      for (const end of await services.bus.endOffsets(services.topics.raw)) {
        for (const [job, at] of [[ahead.job.name, 15], [behind.job.name, 0]] as const) {
          const offset = end.partition === partition ? start + at : end.offset;
          await services.db.sql`insert into job_offsets (job, topic, partition, next_offset) values (${job}, ${services.topics.raw}, ${end.partition}, ${offset})`;
        }
      }
      const stop = await runChain([{ job: behind.job, options: { commitIntervalMs: 20 } }, { job: ahead.job, options: { commitIntervalMs: 20 } }], services, `${services.config.topicPrefix}chain-${run}`);
      try {
        await waitFor(() => behind.seen.filter((r) => r.partition === partition).length >= 20 && ahead.seen.filter((r) => r.partition === partition).length >= 5, { what: "both operators past the records" });
        await Bun.sleep(200);
      } finally {
        await stop();
      }
      const offsets = (seen: ChainRecord[]) => seen.filter((r) => r.partition === partition).map((r) => r.offset - start);
      expect(offsets(behind.seen)).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(offsets(ahead.seen)).toEqual(Array.from({ length: 5 }, (_, i) => 15 + i));
      const at = (seen: ChainRecord[], i: number) => seen.find((r) => r.partition === partition && r.offset === start + i);
      // The repeat of 3 and the junk carry no event; only the first operator is told to dead-letter the junk.
      expect(at(behind.seen, 10)?.event).toBeUndefined();
      expect(at(behind.seen, 11)?.event).toBeUndefined();
      expect(behind.dead).toEqual([start + 11]);
      expect(ahead.dead).toEqual([]);
      // Telemetry arrives enriched, and its bytes for writers out of the chain are the enriched event's.
      const car = at(behind.seen, 12);
      expect(car?.event?.payload).toMatchObject({ car_id: 7, driver_id: 70, color_name: "Black", car_brand: "Volvo", expected_gear: 3 });
      expect(JSON.parse(new TextDecoder().decode(car ? enrichedValue(car) : new Uint8Array())).payload).toMatchObject({ driver_id: 70, expected_gear: 3 });
      expect(at(behind.seen, 13)?.event?.event_id).toBe(`${run}-13`);
    });

    test("the group's bus offsets reach the end of a burst shorter than a second (what frees embedded bus segments)", async () => {
      const run = crypto.randomUUID().slice(0, 8);
      const operator = recorder(`chain-group-${run}`);
      const group = `${services.config.topicPrefix}chain-group-${run}`;
      for (const end of await services.bus.endOffsets(services.topics.raw)) await services.db.sql`insert into job_offsets (job, topic, partition, next_offset) values (${operator.job.name}, ${services.topics.raw}, ${end.partition}, ${end.offset})`;
      // The partitions the bursts went to (the group commits only where its operators took records).
      const partitions = (await services.bus.endOffsets(services.topics.raw)).length;
      const burstLags = async () => {
        const lags = await services.bus.lag(group, services.topics.raw);
        return ["a", "b"].map((burst) => lags.find((p) => p.partition === partitionFor(`${run}-${burst}`, partitions))?.lag);
      };
      const stop = await runChain([{ job: operator.job, options: { commitIntervalMs: 20 } }], services, group);
      try {
        // Two bursts 100 ms apart: the second's commit falls within the second after the first's.
        for (const burst of ["a", "b"]) {
          const key = `${run}-${burst}`;
          await services.bus.produce(services.topics.raw, [{ key, value: encodeEnvelope({ type: "sensor.reading", key, event_id: key, event_time: Date.now(), ingest_time: Date.now(), payload: { sensor_id: key, temperature: 1, humidity: 1 } }) }]);
          await waitFor(() => operator.seen.some((r) => r.key === key), { what: `burst ${burst} processed` });
          await Bun.sleep(100);
        }
        await waitFor(async () => (await burstLags()).every((lag) => lag === 0), { what: "the group's committed offsets at the end", timeoutMs: 5_000 });
      } finally {
        await stop();
      }
      expect(await burstLags()).toEqual([0, 0]);
    });

    test("after a restart the dedupe state comes back from its rows: a retry of an event read before is still a repeat", async () => {
      const run = crypto.randomUUID().slice(0, 8);
      const key = `${run}-r`;
      const event = (id: string): Envelope => ({ type: "sensor.reading", key, event_id: id, event_time: Date.now(), ingest_time: Date.now(), payload: { sensor_id: key, temperature: 1, humidity: 1 } });
      const produce = (ids: string[]) => services.bus.produce(services.topics.raw, ids.map((id) => ({ key, value: encodeEnvelope(event(id)) })));
      const operator = recorder(`chain-restart-${run}`);
      const group = `${services.config.topicPrefix}chain-restart-${run}`;
      const partition = partitionFor(key, (await services.bus.endOffsets(services.topics.raw)).length);
      const ends = await services.bus.endOffsets(services.topics.raw);
      for (const end of ends) await services.db.sql`insert into job_offsets (job, topic, partition, next_offset) values (${operator.job.name}, ${services.topics.raw}, ${end.partition}, ${end.offset})`;
      await produce([`${run}-a`, `${run}-b`]);
      const ours = () => operator.seen.filter((r) => r.partition === partition && r.key === key);
      let stop = await runChain([{ job: operator.job, options: { commitIntervalMs: 20 } }], services, group);
      await waitFor(() => ours().length >= 2, { what: "the first two events" });
      await stop();
      // A new process: the retry of b and a new c.
      await produce([`${run}-b`, `${run}-c`]);
      stop = await runChain([{ job: operator.job, options: { commitIntervalMs: 20 } }], services, group);
      try {
        await waitFor(() => ours().length >= 4, { what: "the retry and c" });
      } finally {
        await stop();
      }
      expect(ours().map((r) => r.event?.event_id ?? "repeat")).toEqual([`${run}-a`, `${run}-b`, "repeat", `${run}-c`]);
    });
  });
}
