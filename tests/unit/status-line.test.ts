import { afterEach, describe, expect, test } from "bun:test";
import { createLogger } from "../../lib/log.ts";
import { waitFor } from "../support/wait.ts";
import { alertsRaised, deadRecords, deltaCommits, ingestEvents, lakeFlushFiles, lateEvents, windowsFinalised } from "../../lib/metrics.ts";
import {
  figuresOf,
  formatDuration,
  formatFinalSummary,
  formatStatusLine,
  LIVE_REFRESH_MS,
  rate,
  readSnapshot,
  shortNumber,
  type StatusFigures,
  type StatusSnapshot,
  startStatusLine,
  statusFields,
} from "../../lib/status-line.ts";

const snapshot = (over: Partial<StatusSnapshot> = {}): StatusSnapshot => ({
  at: 0,
  accepted: 0,
  rejected: 0,
  alerts: 0,
  windowsFinal: 0,
  lakeFiles: 0,
  lakeCommits: 0,
  late: 0,
  dead: 0,
  lag: 0,
  ...over,
});

const demo: StatusFigures = { ...snapshot({ accepted: 3_261, alerts: 14, lakeFiles: 24, lakeCommits: 27, lag: 177 }), eventsPerS: 170, alertsPerMin: 41 };
const busy: StatusFigures = {
  ...snapshot({ accepted: 1_234_567, rejected: 321, alerts: 5_400, windowsFinal: 12_345, lakeFiles: 4_321, lakeCommits: 1_234, late: 17, dead: 2, lag: 12_000 }),
  eventsPerS: 4_200.4,
  alertsPerMin: 0.4,
};

describe("rates", () => {
  test("from two snapshots: growth per unit of time, 0 without an earlier one or elapsed time", () => {
    const earlier = snapshot({ at: 10_000, accepted: 1_000, alerts: 3 });
    const later = snapshot({ at: 12_000, accepted: 1_500, alerts: 5 });
    expect(rate(earlier, later, (s) => s.accepted, 1_000)).toBe(250);
    expect(rate(earlier, later, (s) => s.alerts, 60_000)).toBe(60);
    expect(rate(undefined, later, (s) => s.accepted, 1_000)).toBe(0);
    expect(rate(later, later, (s) => s.accepted, 1_000)).toBe(0);
    // A counter never goes back; a lower figure (another registry) is no negative rate.
    expect(rate(later, earlier, (s) => s.accepted, 1_000)).toBe(0);
  });

  test("events/s over the last 5 s and alerts/min over the last minute of the history", () => {
    // One snapshot a second for 90 s: 100 events/s throughout; alerts only in the last 30 s, one a second.
    const history = Array.from({ length: 91 }, (_, i) => snapshot({ at: i * 1_000, accepted: i * 100, alerts: Math.max(0, i - 60) }));
    const f = figuresOf(history);
    expect(f?.eventsPerS).toBe(100);
    expect(f?.alertsPerMin).toBe(30);
    expect(f?.accepted).toBe(9_000);
    // A burst in the last second shows within the 5 s span.
    const burst = [...history, snapshot({ at: 91_000, accepted: 9_000 + 600, alerts: 31 })];
    expect(figuresOf(burst)?.eventsPerS).toBe((600 + 400) / 5);
    // Two snapshots (the periodic log): the rates are over the interval between them.
    expect(figuresOf([snapshot({ at: 0 }), snapshot({ at: 10_000, accepted: 2_000, alerts: 5 })])).toMatchObject({ eventsPerS: 200, alertsPerMin: 30 });
    expect(figuresOf([snapshot({ at: 5, accepted: 7 })])).toMatchObject({ eventsPerS: 0, alertsPerMin: 0, accepted: 7 });
    expect(figuresOf([])).toBeUndefined();
  });

  test("a snapshot reads the process's counters", () => {
    const before = readSnapshot(5, 1);
    ingestEvents.inc({ type: "sensor.reading", status: "accepted" }, 7);
    ingestEvents.inc({ type: "sensor.reading", status: "rejected" }, 2);
    ingestEvents.inc({ type: "sensor.reading", status: "unavailable" }, 50);
    alertsRaised.inc({}, 3);
    windowsFinalised.inc({}, 4);
    lakeFlushFiles.inc({}, 5);
    deltaCommits.inc({ operation: "WRITE", outcome: "committed" });
    deltaCommits.inc({ operation: "WRITE", outcome: "conflict" });
    lateEvents.inc({}, 6);
    deadRecords.inc({ job: "lake" }, 8);
    const after = readSnapshot(9, 2);
    expect({
      accepted: after.accepted - before.accepted,
      rejected: after.rejected - before.rejected,
      alerts: after.alerts - before.alerts,
      windowsFinal: after.windowsFinal - before.windowsFinal,
      lakeFiles: after.lakeFiles - before.lakeFiles,
      lakeCommits: after.lakeCommits - before.lakeCommits,
      late: after.late - before.late,
      dead: after.dead - before.dead,
    }).toEqual({ accepted: 7, rejected: 2, alerts: 3, windowsFinal: 4, lakeFiles: 5, lakeCommits: 1, late: 6, dead: 8 });
    expect(after).toMatchObject({ at: 2, lag: 9 });
  });
});

describe("the live line", () => {
  test("in words on a wide terminal, terse on a usual one", () => {
    expect(formatStatusLine(demo, 199)).toBe("170 events/s | accepted 3,261 rejected 0 | 41 alerts/min | 0 windows final | lake 24 files/27 commits | lag 177 | late 0 | dead 0");
    expect(formatStatusLine(demo, 119)).toBe("170 ev/s | acc 3,261 rej 0 | 41 al/min | win 0 | lake 24f/27c | lag 177 | late 0 | dead 0");
    expect(formatStatusLine(demo, 79)).toBe("170 ev/s|acc 3.3k rej 0|41 al/min|win 0|lake 24f/27c|lag 177|late 0|dead 0");
    expect(formatStatusLine(busy, 99)).toBe("4.2k ev/s | acc 1.2M rej 321 | 0.4 al/min | win 12k | lake 4.3kf/1.2kc | lag 12k | late 17 | dead 2");
  });

  test("narrower, it drops the least important parts first (lake, windows, late, alerts), then cuts", () => {
    expect(formatStatusLine(busy, 79)).toBe("4.2k ev/s|acc 1.2M rej 321|0.4 al/min|win 12k|lag 12k|late 17|dead 2");
    expect(formatStatusLine(busy, 59)).toBe("4.2k ev/s|acc 1.2M rej 321|0.4 al/min|lag 12k|dead 2");
    expect(formatStatusLine(busy, 39)).toBe("4.2k ev/s|acc 1.2M rej 321|lag 12k");
    expect(formatStatusLine(busy, 19)).toBe("4.2k ev/s");
    expect(formatStatusLine(busy, 7)).toBe("4.2k e…");
  });

  test("never wider than the terminal, whatever the width and the figures", () => {
    const unknownLag: StatusFigures = { ...busy, lag: null, accepted: 98_765_432_109 };
    for (const f of [demo, busy, unknownLag]) {
      for (let width = 1; width <= 200; width++) expect(formatStatusLine(f, width).length).toBeLessThanOrEqual(width);
    }
    expect(formatStatusLine(unknownLag, 200)).toContain("lag ?");
  });

  test("numbers: grouped in full, else 1.2k / 12k / 1.2M; rates under 10 keep a decimal", () => {
    expect([0, 999, 1_000, 1_234, 9_950, 12_345, 999_999, 1_000_000, 1_250_000, 42_000_000, 3_300_000_000].map(shortNumber)).toEqual([
      "0", "999", "1k", "1.2k", "9.9k", "12k", "1M", "1M", "1.3M", "42M", "3.3G",
    ]);
    expect(formatStatusLine({ ...demo, eventsPerS: 0.25, alertsPerMin: 0 }, 200)).toStartWith("0.3 events/s | accepted 3,261 rejected 0 | 0 alerts/min");
  });
});

describe("summaries", () => {
  test("the periodic log line's fields", () => {
    expect(statusFields(busy)).toEqual({
      events_per_s: 4_200.4,
      accepted: 1_234_567,
      rejected: 321,
      alerts_per_min: 0.4,
      alerts: 5_400,
      windows_final: 12_345,
      lake_files: 4_321,
      lake_commits: 1_234,
      consumer_lag: 12_000,
      late: 17,
      dead_lettered: 2,
    });
  });

  test("the final summary: the run's totals and how long it ran", () => {
    expect(formatFinalSummary(busy, 2 * 3_600_000 + 3 * 60_000 + 9_000)).toBe(
      [
        "",
        "devpipe stopped after 2h 03m",
        "  events        1,234,567 accepted, 321 rejected",
        "  alerts        5,400",
        "  windows       12,345 finalised, 17 late events",
        "  lake          1,234 commits, 4,321 files",
        "  dead letters  2",
        "",
        "",
      ].join("\n"),
    );
    expect([0, 45_900, 60_000, 725_000, 3_600_000, 86_400_000 + 4 * 3_600_000].map(formatDuration)).toEqual(["0s", "45s", "1m 00s", "12m 05s", "1h 00m", "1d 04h"]);
  });
});

describe("the driver", () => {
  const CLEAR = "\r\x1b[2K";
  let stop: (() => void) | undefined;
  afterEach(() => stop?.());

  test("on a terminal: a line redrawn in place; a log line clears it, is written, and the line comes back", async () => {
    const screen: string[] = [];
    const logs: string[] = [];
    const logger = createLogger({ test: "status-line" });
    let lagAsked = 0;
    ({ stop } = startStatusLine({
      tty: true,
      columns: () => 200,
      write: (text) => screen.push(text),
      writeLog: (line) => {
        logs.push(line);
        screen.push(line);
      },
      logger,
      intervalMs: 0,
      lag: async () => {
        lagAsked++;
        return 42;
      },
    }));
    // Nothing drawn yet: a log line goes out as it is.
    logger.warn("before the first draw");
    expect(screen).toEqual([logs[0] ?? "missing"]);
    ingestEvents.inc({ type: "sensor.reading", status: "accepted" }, 10);
    // The first draw is due after LIVE_REFRESH_MS; a loaded box may fire the timer late.
    await waitFor(() => screen.some((text) => text.startsWith(CLEAR)), { timeoutMs: LIVE_REFRESH_MS + 10_000, what: "the first draw" });
    const drawn = screen.findLast((text) => text.startsWith(CLEAR)) ?? "";
    expect(drawn).toStartWith(CLEAR);
    expect(drawn).toMatch(/^\r\x1b\[2K[\d.]+ events\/s \| accepted [\d,]+ rejected [\d,]+ \| .* \| lag 42 \| late [\d,]+ \| dead [\d,]+$/);
    expect(lagAsked).toBeGreaterThanOrEqual(2);
    screen.length = 0;
    logger.error("while the line is shown", { n: 1 });
    expect(screen.length).toBe(3);
    expect(screen[0]).toBe(CLEAR);
    expect(JSON.parse(screen[1] ?? "{}")).toMatchObject({ level: "error", msg: "while the line is shown", n: 1 });
    expect(screen[2]).toBe(drawn);
    screen.length = 0;
    stop?.();
    expect(screen).toEqual([CLEAR]);
    // Stopped: the logger's output is its own again.
    const logged = logs.length;
    const stderrWrite = process.stderr.write.bind(process.stderr);
    const seen: string[] = [];
    process.stderr.write = ((chunk: string | Uint8Array) => {
      seen.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    try {
      logger.warn("after stop");
    } finally {
      process.stderr.write = stderrWrite;
    }
    expect(logs.length).toBe(logged);
    expect(seen.join("")).toContain('"msg":"after stop"');
    expect(screen).toEqual([CLEAR]);
  });

  test("without a terminal: a status log line every interval, and nothing drawn", async () => {
    const lines: string[] = [];
    const previous = process.env.LOG_LEVEL;
    process.env.LOG_LEVEL = "info";
    const logger = createLogger({ test: "status-line" }, (line) => lines.push(line));
    process.env.LOG_LEVEL = previous;
    const screen: string[] = [];
    ({ stop } = startStatusLine({ tty: false, columns: () => 80, write: (text) => screen.push(text), writeLog: (line) => screen.push(line), logger, intervalMs: 300, lag: async () => 7 }));
    ingestEvents.inc({ type: "sensor.reading", status: "accepted" }, 30);
    await waitFor(() => lines.length >= 2, { timeoutMs: 10_000, what: "two status lines" });
    stop?.();
    const count = lines.length;
    expect(count).toBeGreaterThanOrEqual(2);
    const first = JSON.parse(lines[0] ?? "{}") as Record<string, unknown>;
    expect(first).toMatchObject({ level: "info", msg: "status", test: "status-line", consumer_lag: 7 });
    expect(Object.keys(first)).toEqual(expect.arrayContaining(["events_per_s", "accepted", "rejected", "alerts_per_min", "alerts", "windows_final", "lake_files", "lake_commits", "late", "dead_lettered"]));
    expect(first.events_per_s).toBeGreaterThan(0);
    expect(screen).toEqual([]);
    await Bun.sleep(400);
    expect(lines.length).toBe(count);
  });

  test("without a terminal and an interval of 0: silent", async () => {
    const lines: string[] = [];
    const logger = createLogger({}, (line) => lines.push(line));
    ({ stop } = startStatusLine({ tty: false, columns: () => 80, write: () => undefined, writeLog: () => undefined, logger, intervalMs: 0, lag: async () => 0 }));
    await Bun.sleep(300);
    expect(lines).toEqual([]);
  });
});
