/**
 * The pyspark Structured Streaming peer: runs bench/peers/spark_job.py (seed 000's enrichment, alerts and
 * 15-minute alert windows) over a Kafka topic of devpipe envelopes in catch-up mode, and returns its figures.
 *
 *   import { runSparkPeer } from "./peers/spark.ts";
 *   const r = await runSparkPeer({ brokers, topic, records, dims: { cars, car_colors, car_models } });
 *
 * As a CLI (prints the job's JSON line on stdout; --fill first fills the topic through the project's bus):
 *   bun bench/peers/spark.ts --brokers 127.0.0.1:19092 --topic peerbench.events.raw --records 1000000 [--fill]
 *     [--shuffle-partitions 4] [--max-offsets-per-trigger 0] [--driver-memory 2g]
 *
 * The first run installs pyspark and the connector jars into ~/.cache/devpipe (bench/peers/spark-setup.sh).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";

const HERE = import.meta.dir;

export interface SparkPeerDims {
  cars: object[];
  car_colors: object[];
  car_models: object[];
}

export interface SparkPeerOptions {
  brokers: string;
  topic: string;
  /** Records expected in the topic: a cross-check (the job reads the topic's end offsets itself). */
  records: number;
  dims: SparkPeerDims;
  /** spark.sql.shuffle.partitions (default 4). */
  shufflePartitions?: number;
  /** Records per micro-batch and query (default 0: unset, the whole backlog in one batch, as Spark does by default). */
  maxOffsetsPerTrigger?: number;
  driverMemory?: string;
  /** Seconds the job waits for the catch-up before it fails (default 1,800). */
  timeoutSeconds?: number;
  /** Where the job's log lines go (default: this process's stderr). */
  log?: (chunk: string) => void;
}

export interface SparkPeerResult {
  records_per_s: number;
  seconds: number;
  startup_seconds: number;
  [k: string]: unknown;
}

const ResultSchema = z.looseObject({ records_per_s: z.number(), seconds: z.number(), startup_seconds: z.number() });

/** The dims of bench/pipeline.ts: 1,000 cars, four colours, one model. */
export function pipelineDims(): SparkPeerDims {
  return {
    cars: Array.from({ length: 1_000 }, (_, i) => ({ car_id: i, driver_id: 5_000 + i, model_id: 1, color_id: 1 + (i % 4) })),
    car_colors: ["Black", "White", "Silver", "Red"].map((color_name, i) => ({ color_id: i + 1, color_name })),
    car_models: [{ model_id: 1, car_brand: "Volvo", car_model: "V60" }],
  };
}

/** Runs a process to its end; its stdout is returned, its stderr goes to `log`. Rejects on a non-zero exit. */
async function run(cmd: string[], env: Record<string, string | undefined>, log: (chunk: string) => void): Promise<string> {
  const proc = Bun.spawn(cmd, { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const pump = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) log(decoder.decode(chunk, { stream: true }));
  })();
  const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited, pump]);
  if (code !== 0) throw new Error(`${cmd.slice(0, 2).join(" ")} exited with ${code}`);
  return stdout;
}

/** bench/peers/spark-setup.sh's KEY=VALUE lines. */
async function setup(log: (chunk: string) => void): Promise<Record<string, string>> {
  const out = await run(["bash", join(HERE, "spark-setup.sh")], { ...process.env }, log);
  const env = Object.fromEntries(out.split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
  for (const key of ["SPARK_PEER_PYTHON", "SPARK_PEER_JARS", "JAVA_HOME"]) if (!env[key]) throw new Error(`spark-setup.sh printed no ${key}`);
  return env;
}

const jsonLines = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";

export async function runSparkPeer(options: SparkPeerOptions): Promise<SparkPeerResult> {
  const log = options.log ?? ((chunk: string) => void process.stderr.write(chunk));
  const t0 = performance.now();
  const env = await setup(log);
  const setupSeconds = (performance.now() - t0) / 1000;
  const dir = await mkdtemp(join(tmpdir(), "devpipe-spark-peer-dims-"));
  try {
    const paths = { cars: join(dir, "cars.jsonl"), car_colors: join(dir, "car_colors.jsonl"), car_models: join(dir, "car_models.jsonl") };
    await Promise.all([writeFile(paths.cars, jsonLines(options.dims.cars)), writeFile(paths.car_colors, jsonLines(options.dims.car_colors)), writeFile(paths.car_models, jsonLines(options.dims.car_models))]);
    const args = [
      env.SPARK_PEER_PYTHON ?? "python3",
      join(HERE, "spark_job.py"),
      ...["--brokers", options.brokers, "--topic", options.topic, "--records", String(options.records)],
      ...["--cars", paths.cars, "--car-colors", paths.car_colors, "--car-models", paths.car_models],
      ...["--jars", env.SPARK_PEER_JARS ?? ""],
      ...(options.shufflePartitions === undefined ? [] : ["--shuffle-partitions", String(options.shufflePartitions)]),
      ...(options.maxOffsetsPerTrigger === undefined ? [] : ["--max-offsets-per-trigger", String(options.maxOffsetsPerTrigger)]),
      ...(options.driverMemory === undefined ? [] : ["--driver-memory", options.driverMemory]),
      ...(options.timeoutSeconds === undefined ? [] : ["--timeout", String(options.timeoutSeconds)]),
    ];
    // PYSPARK_SUBMIT_ARGS left unset: the job builds it from --jars and --driver-memory.
    const jobEnv: Record<string, string | undefined> = { ...process.env, JAVA_HOME: env.JAVA_HOME, PYSPARK_SUBMIT_ARGS: undefined, PYTHONUNBUFFERED: "1" };
    const t1 = performance.now();
    const stdout = await run(args, jobEnv, log);
    const jobSeconds = (performance.now() - t1) / 1000;
    const line = stdout.split("\n").filter((l) => l.startsWith("{")).at(-1);
    if (!line) throw new Error(`spark_job.py printed no JSON line (stdout: ${stdout.slice(0, 500)})`);
    const parsed: unknown = JSON.parse(line);
    const result = ResultSchema.parse(parsed);
    // The job's own key order (bench, engine, records, ...), with the checked figures.
    return { ...(parsed as Record<string, unknown>), ...result, setup_seconds: Math.round(setupSeconds * 100) / 100, job_wall_seconds: Math.round(jobSeconds * 100) / 100 };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({
    options: {
      brokers: { type: "string" },
      topic: { type: "string", default: "peerbench.events.raw" },
      records: { type: "string", default: "1000000" },
      fill: { type: "boolean", default: false },
      partitions: { type: "string", default: "8" },
      "shuffle-partitions": { type: "string" },
      "max-offsets-per-trigger": { type: "string" },
      "driver-memory": { type: "string" },
    },
  });
  const optional = (value: string | undefined) => (value === undefined ? undefined : Number(value));
  let brokers = values.brokers;
  if (!brokers) {
    const { serviceEnv } = await import("../services.ts");
    brokers = serviceEnv().KAFKA_BROKERS ?? "127.0.0.1:19092";
  }
  const records = Number(values.records);
  if (values.fill) {
    const { fillTopic } = await import("./fill.ts");
    process.stderr.write(`${JSON.stringify({ fill: await fillTopic({ brokers, topic: values.topic, records, partitions: Number(values.partitions) }) })}\n`);
  }
  const result = await runSparkPeer({
    brokers,
    topic: values.topic,
    records,
    dims: pipelineDims(),
    shufflePartitions: optional(values["shuffle-partitions"]),
    maxOffsetsPerTrigger: optional(values["max-offsets-per-trigger"]),
    driverMemory: values["driver-memory"],
  });
  console.log(JSON.stringify(result));
}
