/**
 * `bun run bench:peer`: the operator chain against pyspark Structured Streaming on the same Kafka topic,
 * in one run on this box (`bash scripts/services.sh up` first). One backlog of N events goes into a fresh
 * events.raw; pyspark runs seed 000's job over it (bench/peers/spark_job.py: parse, broadcast join of cars
 * and colours, expected_gear, alert filter, 15-min/1-min sliding window count by colour, 2-min watermark),
 * then our chain drains the same topic into alerts and the six views, committed. Prints one JSON line per
 * engine and one with the ratio. BENCH_EVENTS (1,000,000) sets N. Event times advance one second every 1,000
 * events (the last ones now), so windows close in both engines.
 */
import { benchDims, drainWithChain, fillRaw, openPipeline } from "./chain-run.ts";
import { runSparkPeer } from "./peers/spark.ts";

const N = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const print = (fields: Record<string, unknown>) => console.log(JSON.stringify({ bench: "peer", ...fields }));

const pipeline = await openPipeline("services", "peer");
try {
  const { services } = pipeline;
  // Event times advance a second every 1,000 events, so both engines' windows close as the watermark passes them.
  const fill = await fillRaw(services, N, { perSecond: 1_000 });
  print({ phase: "fill", topic: services.topics.raw, events: N, ...fill });

  const spark = await runSparkPeer({ brokers: (services.config.kafkaBrokers ?? []).join(","), topic: services.topics.raw, records: N, dims: benchDims });
  print({ phase: "pyspark", ...spark });

  const operators = ["alerts", "windows"];
  const drain = await drainWithChain(services, operators, N);
  await drain.stop();
  const { stop: _, ...ours } = drain;
  print({ phase: "devpipe", engine: "devpipe chain", operators, records: N, ...ours });

  print({ phase: "ratio", devpipe_events_per_s: ours.events_per_s, pyspark_records_per_s: spark.records_per_s, ratio: Math.round((ours.events_per_s / spark.records_per_s) * 100) / 100 });
} finally {
  await pipeline.close();
}
