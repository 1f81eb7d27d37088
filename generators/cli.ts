/**
 * `bun run simulate <domain> [options]`: device simulators that POST to the gateway over HTTP like
 * real devices (they never import the gateway). Run with --help for the options.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { domains } from "./domains/index.ts";
import { createSender } from "./sender.ts";
import { createStats } from "./stats.ts";
import { createEventStream } from "./stream.ts";

const fraction = z.coerce.number().min(0).max(1);
const OptionsSchema = z.object({
  domain: z.string().refine((d) => domains.has(d), { message: `one of: ${[...domains.keys()].join(", ")}` }),
  devices: z.coerce.number().int().min(1).max(1_000_000).default(10),
  rate: z.coerce.number().positive().max(10_000_000).default(100),
  duration: z.coerce.number().min(0).default(60),
  seed: z.coerce.number().int().default(1),
  url: z.url().default("http://localhost:3000"),
  key: z.string().min(1).optional(),
  batch: z.coerce.number().int().min(1).max(10_000).optional(),
  concurrency: z.coerce.number().int().min(1).max(1_000).default(8),
  "start-time": z.string().optional(),
  "late-fraction": fraction.default(0),
  "out-of-order": fraction.default(0),
  duplicates: fraction.default(0),
  "invalid-fraction": fraction.default(0),
  "dims-dir": z.string().default("./data/dims"),
  quiet: z.boolean().default(false),
  gzip: z.boolean().default(false),
});
type Options = z.infer<typeof OptionsSchema>;

const USAGE = `usage: bun run simulate <domain> [options]
domains:
${[...domains.values()].map((d) => `  ${d.name.padEnd(10)} ${d.description}`).join("\n")}
options:
  --devices N            devices (cars, sensors, users…), default 10
  --rate R               events per second, all devices together, default 100
  --duration S           seconds to run, default 60; 0 runs until Ctrl-C
  --seed X               PRNG seed, default 1: the same seed gives the same events
  --url URL              gateway, default http://localhost:3000
  --key KEY              ingest key; default $API_KEY, else ./data/api-key
  --batch N              records per request, default rate/20 (1 to 1000)
  --concurrency N        requests in flight at most, default 8
  --start-time T         simulated clock start (ISO-8601 or epoch ms): event times and ids fully deterministic
  --late-fraction F      share of events 3–10 min late (behind the watermark)
  --out-of-order F       share of events 0–60 s out of order (within the lateness)
  --duplicates F         share of events re-sent with the same event_id
  --invalid-fraction F   share of events with a field outside the contract
  --dims-dir DIR         where dimensions go when the gateway has no /v1/dims yet, default ./data/dims
  --gzip                 compress each request body with gzip (Content-Encoding: gzip)
  --quiet                no live progress line`;

const STRING_OPTIONS = ["devices", "rate", "duration", "seed", "url", "key", "batch", "concurrency", "start-time", "late-fraction", "out-of-order", "duplicates", "invalid-fraction", "dims-dir"] as const;

function parseOptions(argv: string[]): Options {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...Object.fromEntries(STRING_OPTIONS.map((name) => [name, { type: "string" as const }])),
      quiet: { type: "boolean" },
      gzip: { type: "boolean" },
      help: { type: "boolean" },
    },
  });
  if (values.help || positionals.length === 0) {
    process.stderr.write(`${USAGE}\n`);
    process.exit(values.help ? 0 : 2);
  }
  const parsed = OptionsSchema.safeParse({ ...values, domain: positionals[0] });
  if (!parsed.success) {
    process.stderr.write(`${parsed.error.issues.map((i) => `--${i.path.join(".")}: ${i.message}`).join("\n")}\n\n${USAGE}\n`);
    process.exit(2);
  }
  return parsed.data;
}

async function resolveKey(options: Options): Promise<string> {
  if (options.key) return options.key;
  if (process.env.API_KEY) return process.env.API_KEY;
  const stored = (await readFile(join(process.env.DATA_DIR ?? "./data", "api-key"), "utf8").catch(() => "")).trim();
  if (stored) return stored;
  process.stderr.write("no API key: pass --key, set API_KEY, or start the gateway first so ./data/api-key exists\n");
  process.exit(2);
}

/** PUT each dimension; a gateway without /v1/dims yet gets them as JSON files instead. */
async function loadDims(dims: Record<string, Record<string, unknown>[]>, options: Options, key: string) {
  for (const [name, rows] of Object.entries(dims)) {
    const response = await fetch(`${options.url.replace(/\/$/, "")}/v1/dims/${name}`, { method: "PUT", body: JSON.stringify(rows), headers: { "content-type": "application/json", authorization: `Bearer ${key}` } });
    if (response.ok) {
      process.stderr.write(`dims ${name}: ${rows.length} rows loaded\n`);
      continue;
    }
    await response.body?.cancel();
    if (response.status !== 404 && response.status !== 405) throw new Error(`PUT /v1/dims/${name} answered ${response.status}`);
    const dir = resolve(options["dims-dir"]);
    await mkdir(dir, { recursive: true });
    await Bun.write(join(dir, `${name}.json`), JSON.stringify(rows, null, 2));
    process.stderr.write(`dims ${name}: the gateway has no /v1/dims; wrote ${rows.length} rows to ${join(dir, `${name}.json`)}\n`);
  }
}

export async function simulate(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  const domain = domains.get(options.domain);
  if (!domain) throw new Error(`unknown domain ${options.domain}`);
  const key = await resolveKey(options);
  const startTime = options["start-time"] === undefined ? undefined : /^\d+$/.test(options["start-time"]) ? Number(options["start-time"]) : Date.parse(options["start-time"]);
  if (startTime !== undefined && Number.isNaN(startTime)) throw new Error(`--start-time: not a date: ${options["start-time"]}`);
  const stream = createEventStream({
    domain,
    devices: options.devices,
    seed: options.seed,
    rate: options.rate,
    startTime,
    faults: { lateFraction: options["late-fraction"], outOfOrder: options["out-of-order"], duplicates: options.duplicates, invalidFraction: options["invalid-fraction"] },
  });
  const stats = createStats();
  const send = createSender({ url: options.url, key, gzip: options.gzip }, stats);
  await loadDims(stream.dims, options, key);

  const batchSize = options.batch ?? Math.min(1_000, Math.max(1, Math.ceil(options.rate / 20)));
  const intervalMs = (batchSize / options.rate) * 1000;
  const started = performance.now();
  const deadline = options.duration > 0 ? started + options.duration * 1000 : Number.POSITIVE_INFINITY;
  const inFlight = new Set<Promise<void>>();
  let stopping = false;
  let generated = 0;
  process.once("SIGINT", () => {
    stopping = true;
  });

  const progress = () => {
    const seconds = (performance.now() - started) / 1000;
    const { p50_ms, p99_ms } = stats.percentiles();
    const t = stats.totals;
    return `[${domain.name}] ${seconds.toFixed(0)}s  ${Math.round(generated / Math.max(seconds, 0.001))} ev/s  accepted ${t.accepted}  rejected ${t.rejected}  failed ${t.failed_events}  p50 ${p50_ms}ms  p99 ${p99_ms}ms`;
  };
  const ticker = options.quiet ? undefined : setInterval(() => process.stderr.write(process.stderr.isTTY ? `\r${progress()}   ` : `${progress()}\n`), 1_000);

  for (let k = 0; !stopping; k++) {
    const due = started + k * intervalMs;
    if (due >= deadline) break;
    const wait = due - performance.now();
    if (wait > 1) await Bun.sleep(wait);
    while (inFlight.size >= options.concurrency) await Promise.race(inFlight);
    const batch = stream.take(batchSize);
    generated += batch.length;
    const request: Promise<void> = send(batch).finally(() => inFlight.delete(request));
    inFlight.add(request);
  }
  await Promise.all(inFlight);
  clearInterval(ticker);
  if (!options.quiet) process.stderr.write(process.stderr.isTTY ? `\r${progress()}\n` : `${progress()}\n`);
  const seconds = (performance.now() - started) / 1000;
  const summary = { domain: domain.name, devices: options.devices, seed: options.seed, seconds: Math.round(seconds * 100) / 100, generated, events_per_s: Math.round(generated / seconds), batch: batchSize, ...stats.totals, ...stats.percentiles() };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

if (import.meta.main) {
  simulate(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`simulate: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
