/**
 * The top self-time entries of a `.cpuprofile` (Chrome DevTools format, as `bun --cpu-prof` writes it), as
 * JSON lines: by function (name + file:line), then by source (a package under node_modules, a file of this
 * repository, or a native/runtime entry such as "(garbage collector)").
 *
 *   bun bench/cpuprofile-top.ts /tmp/lake-prof/CPU.*.cpuprofile [--top 10] [--from <epoch ms> --to <epoch ms>]
 *
 * `--from`/`--to` keep the samples of one window (bench/lake.ts prints its sink's as window_from_ms and
 * window_to_ms), so set-up and waiting do not count. The profiler records nothing while the thread is idle:
 * each sample counts for the time to the next one, capped at twice the median interval, so an idle gap is
 * not charged to the function that ran before it. `busy_pct` is the main thread's share of the window.
 */
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { z } from "zod";

const profileSchema = z.object({
  nodes: z.array(
    z.object({
      id: z.number(),
      callFrame: z.object({ functionName: z.string(), url: z.string(), lineNumber: z.number() }),
    }),
  ),
  samples: z.array(z.number()),
  timeDeltas: z.array(z.number()),
  startTime: z.number(),
  endTime: z.number(),
});

const argv = process.argv.slice(2);
const option = (name: string) => {
  const at = argv.indexOf(`--${name}`);
  return at >= 0 ? Number(argv[at + 1]) : undefined;
};
const file = argv.find((a, i) => !a.startsWith("--") && !argv[i - 1]?.startsWith("--"));
const top = option("top") ?? 10;
if (!file) throw new Error("usage: bun bench/cpuprofile-top.ts <file.cpuprofile> [--top 10] [--from <epoch ms> --to <epoch ms>]");
const profile = profileSchema.parse(JSON.parse(readFileSync(file, "utf8")));
// Profile times are microseconds; Bun's are since the epoch.
const fromUs = (option("from") ?? Number.NEGATIVE_INFINITY) * 1000;
const toUs = (option("to") ?? Number.POSITIVE_INFINITY) * 1000;
const sortedDeltas = [...profile.timeDeltas].sort((a, b) => a - b);
const capUs = 2 * (sortedDeltas[Math.floor(sortedDeltas.length / 2)] ?? 1_000);

const repo = new URL("..", import.meta.url).pathname;
const where = (url: string) => {
  const path = url.replace(/^file:\/\//, "");
  if (!path) return "";
  const module = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (module?.[1]) return `node_modules/${module[1]}`;
  return path.startsWith(repo) ? relative(repo, path) : path;
};

const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
const byFunction = new Map<string, { ms: number; name: string; at: string }>();
const bySource = new Map<string, number>();
let totalMs = 0;
let clock = profile.startTime;
let firstUs: number | undefined;
let lastUs = 0;
profile.samples.forEach((id, i) => {
  clock += profile.timeDeltas[i] ?? 0;
  if (clock < fromUs || clock > toUs) return;
  firstUs ??= clock;
  lastUs = clock;
  // Sample i lasts until the next one, at most capUs (the thread may have gone idle in between).
  const ms = Math.min(capUs, Math.max(0, profile.timeDeltas[i + 1] ?? capUs / 2)) / 1000;
  totalMs += ms;
  const frame = frames.get(id);
  const name = frame?.functionName || "(anonymous)";
  const source = frame ? where(frame.url) : "";
  const at = source ? `${source}:${(frame?.lineNumber ?? 0) + 1}` : "";
  const key = `${name}@${at}`;
  const entry = byFunction.get(key) ?? { ms: 0, name, at };
  entry.ms += ms;
  byFunction.set(key, entry);
  const group = source || name;
  bySource.set(group, (bySource.get(group) ?? 0) + ms);
});

const pct = (ms: number) => Math.round((ms / totalMs) * 1000) / 10;
const out = (line: Record<string, unknown>) => console.log(JSON.stringify({ bench: "cpuprofile", ...line }));
const windowMs = Number.isFinite(fromUs) && Number.isFinite(toUs) ? (toUs - fromUs) / 1000 : (lastUs - (firstUs ?? lastUs)) / 1000;
out({ file, samples: profile.samples.length, window_ms: Math.round(windowMs), busy_ms: Math.round(totalMs), busy_pct: Math.round((totalMs / Math.max(1, windowMs)) * 1000) / 10 });
[...byFunction.values()]
  .sort((a, b) => b.ms - a.ms)
  .slice(0, top)
  .forEach((e, i) => out({ by: "function", rank: i + 1, self_ms: Math.round(e.ms), self_pct: pct(e.ms), function: e.name, at: e.at }));
[...bySource.entries()]
  .sort((a, b) => b[1] - a[1])
  .slice(0, top)
  .forEach(([source, ms], i) => out({ by: "source", rank: i + 1, self_ms: Math.round(ms), self_pct: pct(ms), source }));
