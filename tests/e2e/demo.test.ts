import { afterAll, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { freePort, startProcess } from "../support/process.ts";
import { tempDir } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

/** `bun run demo` as a newcomer runs it on a fresh data directory: one command, then the dashboard fills. */
const scratch = tempDir("devpipe-demo-");
afterAll(() => scratch.remove());

const root = new URL("../../", import.meta.url).pathname;
const CLEAR = "\r\x1b[2K";

type Status = { msg: string; accepted: number; events_per_s: number; alerts: number; lake_files: number; lake_commits: number; consumer_lag: number | null; dead_lettered: number };
const statusLines = (output: string) =>
  output
    .split("\n")
    .filter((line) => line.includes('"msg":"status"'))
    .map((line) => JSON.parse(line) as Status);

/** The totals of the final summary, or undefined while it is not printed. */
function finalSummary(output: string) {
  const block = /devpipe stopped after (\S+(?: \S+)?)\n {2}events +([\d,]+) accepted, ([\d,]+) rejected\n {2}alerts +([\d,]+)\n {2}windows +([\d,]+) finalised, ([\d,]+) late events\n {2}lake +([\d,]+) commits, ([\d,]+) files\n {2}dead letters +([\d,]+)\n/.exec(output.replaceAll("\r", ""));
  if (!block) return undefined;
  const n = (i: number) => Number((block[i] ?? "").replaceAll(",", ""));
  return { uptime: block[1], accepted: n(2), rejected: n(3), alerts: n(4), windows: n(5), late: n(6), commits: n(7), files: n(8), dead: n(9) };
}

test("bun run demo prints the dashboard URL and a key; within 30 s there are alerts and filling windows; the output stays quiet", async () => {
  const port = freePort();
  // The entry file directly (as `bun run demo` does), so a signal reaches the process itself.
  const demo = startProcess(["start.ts", "--demo"], { DATA_DIR: `${scratch.path}/data`, PORT: String(port), LOG_LEVEL: "info", STATUS_INTERVAL_MS: "1000" });
  const started = Date.now();
  // One budget for everything: the dashboard must have alerts and windows within 30 s of the command.
  const remaining = () => Math.max(1, started + 30_000 - Date.now());
  let signalled = false;
  try {
    const banner = await waitFor(() => {
      const output = demo.output();
      const url = /dashboard: (http:\/\/\S+)\//.exec(output)?.[1];
      const key = /API key: +(dp_[\w-]+)/.exec(output)?.[1];
      return url && key ? { url: url.replace("localhost", "127.0.0.1"), key } : undefined;
    }, { timeoutMs: remaining(), what: "the banner with the dashboard URL and the API key" });
    const get = async (path: string) => {
      const response = await fetch(`${banner.url}${path}`, { headers: { authorization: `Bearer ${banner.key}` } });
      expect(response.status).toBe(200);
      return response;
    };
    expect(await (await get("/")).text()).toContain("/dashboard/app.js");
    expect((await get("/dashboard/app.js")).headers.get("content-type")).toContain("javascript");
    const since = started - 60 * 60_000;
    await waitFor(async () => ((await (await get(`/v1/alerts?from=${since}&limit=10`)).json()) as { items: unknown[] }).items.length > 0, { timeoutMs: remaining(), intervalMs: 500, what: "alerts from the vehicle simulator" });
    for (const view of ["vehicle_alerts_15m", "page_views_1m", "active_users_5m", "sensor_stats_1m"]) {
      await waitFor(async () => ((await (await get(`/v1/aggregates/${view}?from=${since}&limit=10`)).json()) as { items: unknown[] }).items.length > 0, { timeoutMs: remaining(), intervalMs: 500, what: `windows of ${view}` });
    }
    const metrics = await (await fetch(`${banner.url}/metrics`)).text();
    expect(metrics).toMatch(/^devpipe_ingest_events_total\{type="vehicle.telemetry",status="accepted"\} [1-9]/m);
    const acceptedSoFar = [...metrics.matchAll(/^devpipe_ingest_events_total\{type="[^"]+",status="accepted"\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);

    // Steady state (past the first lake flush, which creates the tables): thousands of requests and dozens of
    // batches and flushes go by; the output only gains the periodic status line (once a second here), and any
    // other line at most once.
    await waitFor(() => statusLines(demo.output()).some((s) => s.lake_files > 0), { timeoutMs: 20_000, intervalMs: 200, what: "a status line after the first lake flush" });
    const mark = demo.output().length;
    await waitFor(() => statusLines(demo.output().slice(mark)).length >= 8, { timeoutMs: 20_000, intervalMs: 200, what: "8 status lines" });
    const window = demo.output().slice(mark).split("\n").filter((line) => line.trim().length > 0);
    const others = window.filter((line) => !line.includes('"msg":"status"')).map((line) => line.replace(/"time":"[^"]*",/, ""));
    expect(others.filter((line, i) => others.indexOf(line) !== i)).toEqual([]);
    expect(others.length).toBeLessThanOrEqual(5);

    const statuses = statusLines(demo.output());
    const last = statuses[statuses.length - 1];
    expect(statuses.every((s, i) => i === 0 || s.accepted >= (statuses[i - 1]?.accepted ?? 0))).toBe(true);
    expect(last?.accepted).toBeGreaterThanOrEqual(acceptedSoFar);
    expect(last?.events_per_s).toBeGreaterThan(50);
    expect(last?.alerts).toBeGreaterThan(0);
    expect(last?.lake_commits).toBeGreaterThan(0);
    expect(last?.consumer_lag).toBeGreaterThanOrEqual(0);
    expect(last?.dead_lettered).toBe(0);

    // Ctrl-C: the final summary once, after the graceful shutdown, then exit 0.
    signalled = true;
    demo.child.kill("SIGINT");
    expect(await demo.exited()).toBe(0);
    const output = demo.output();
    expect(output.match(/devpipe stopped after/g)?.length).toBe(1);
    const summary = finalSummary(output);
    expect(summary).toBeDefined();
    expect(summary?.accepted).toBeGreaterThanOrEqual(last?.accepted ?? Number.POSITIVE_INFINITY);
    expect(summary?.alerts).toBeGreaterThanOrEqual(last?.alerts ?? Number.POSITIVE_INFINITY);
    expect(summary?.commits).toBeGreaterThanOrEqual(last?.lake_commits ?? Number.POSITIVE_INFINITY);
    expect(summary?.files).toBeGreaterThan(0);
    expect(summary?.dead).toBe(0);
    expect(output).toContain('"msg":"stopped"');
    // Per-request logs are opt-in (ACCESS_LOG=1): no access log line, and the only lines that name a request
    // are the demo's three dimension loads (an admin change worth its line).
    expect(output).not.toContain('"msg":"request"');
    const requestLines = output.split("\n").filter((line) => line.includes('"request_id"'));
    expect(requestLines.map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual(["dimension replaced", "dimension replaced", "dimension replaced"]);
  } finally {
    if (!signalled) {
      demo.child.kill("SIGTERM");
      await demo.exited();
    }
  }
}, 90_000);

/** What a terminal shows after `transcript`: carriage returns move to the line start, CLEAR empties the line. */
function render(transcript: string): string[] {
  const lines: string[] = [];
  let line = "";
  let column = 0;
  for (let i = 0; i < transcript.length; i++) {
    if (transcript.startsWith(CLEAR, i)) {
      line = "";
      column = 0;
      i += CLEAR.length - 1;
    } else if (transcript[i] === "\r") column = 0;
    else if (transcript[i] === "\n") {
      lines.push(line);
      line = "";
      column = 0;
    } else {
      line = line.slice(0, column) + (transcript[i] ?? "") + line.slice(column + 1);
      column++;
    }
  }
  lines.push(line);
  return lines;
}

test("on a terminal, bun run demo keeps one live status line that log lines never garble; Ctrl-C prints the summary", async () => {
  const columns = 100;
  const port = freePort();
  // A real pseudo-terminal of 100 columns (util-linux script); Ctrl-C is typed into it. `bun run demo` as a
  // person types it: the script runs under a bun wrapper, so one Ctrl-C reaches the process twice.
  const child = Bun.spawn(["script", "-q", "-e", "-c", `stty cols ${columns} rows 40; exec bun run demo`, "/dev/null"], {
    cwd: root,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", TERM: "xterm-256color", LOG_LEVEL: "info", DATA_DIR: `${scratch.path}/tty`, PORT: String(port) },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  const chunks: string[] = [];
  const decoder = new TextDecoder();
  const drained = (async () => {
    for await (const chunk of child.stdout) chunks.push(decoder.decode(chunk, { stream: true }));
  })();
  const transcript = () => chunks.join("");
  // What follows each CLEAR that is no log line, less the terminal's echo of the typed Ctrl-C.
  const draws = () => [...new Set(transcript().split(CLEAR).slice(1).filter((piece) => !piece.includes("\n") && piece.includes("ev/s")).map((piece) => piece.replace(/\^C$/, "")))];
  let typed = false;
  try {
    await waitFor(() => draws().filter((line) => /acc [1-9]/.test(line)).length >= 6, { timeoutMs: 60_000, intervalMs: 200, what: "six different live status lines with accepted events" });
    const before = render(transcript());
    typed = true;
    child.stdin.write("\x03");
    await child.stdin.flush();
    expect(await child.exited).toBe(0);
    await drained;
    const raw = transcript();

    // Each frame is one line within the terminal's width, in the terse form that fits 100 columns.
    const drawn = draws();
    expect(drawn.length).toBeGreaterThanOrEqual(6);
    for (const line of drawn) {
      expect(line.length).toBeLessThan(columns);
      expect(line).toMatch(/^[\d.]+k? ev\/s \| acc [\d.,]+[kM]? rej [\d.,]+[kM]? \| [\d.]+ al\/min \| win \d+ \| lake \d+f\/\d+c \| lag [\d.,]+k? \| late \d+ \| dead \d+$/);
    }
    // Never garbled: every log line starts a line of its own (the first one, after a newline, or after the live line was cleared).
    const garbled = [...raw.matchAll(/\{"time":/g)].flatMap((match) => {
      const preceding = raw.slice(Math.max(0, match.index - CLEAR.length), match.index);
      return match.index === 0 || preceding.endsWith("\n") || preceding === CLEAR ? [] : [raw.slice(Math.max(0, match.index - 120), match.index + 80)];
    });
    expect(garbled).toEqual([]);
    // The live line is gone before the summary; the summary is the run's, printed once.
    const after = render(raw);
    const summaryAt = after.findIndex((line) => line.startsWith("devpipe stopped after"));
    expect(summaryAt).toBeGreaterThan(0);
    expect(after.filter((line) => line.startsWith("devpipe stopped after")).length).toBe(1);
    expect(after.slice(summaryAt).some((line) => line.includes("ev/s"))).toBe(false);
    expect(finalSummary(raw)?.accepted).toBeGreaterThan(0);

    mkdirSync(`${root}.test-output`, { recursive: true });
    const tail = (lines: string[], n: number) => lines.filter((line, i) => line.length > 0 || i === lines.length - 1).slice(-n);
    writeFileSync(
      `${root}.test-output/demo-terminal.txt`,
      [
        `bun run demo in a ${columns}-column terminal (util-linux script), as rendered`,
        "",
        "--- the last lines on screen just before Ctrl-C (the last one is the live status line) ---",
        ...tail(before, 6),
        "",
        "--- after Ctrl-C ---",
        ...tail(after, 16),
        "",
        "--- every frame of the live line ---",
        ...drawn,
        "",
      ].join("\n"),
    );
    writeFileSync(`${root}.test-output/demo-terminal.raw`, raw);
  } finally {
    if (!typed) child.stdin.write("\x03");
    await child.exited;
  }
}, 120_000);
