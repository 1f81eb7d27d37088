/**
 * What `bun run start` shows a person while it runs: on a terminal, one live line redrawn in place;
 * elsewhere, a `status` log line every STATUS_INTERVAL_MS; at the end, a summary of the run. The figures
 * are this process's metrics (lib/metrics.ts): in the all-in-one process that is the gateway and every job.
 */
import { type Logger, setProcessLogSink } from "./log.ts";
import { alertsRaised, deadRecords, deltaCommits, ingestEvents, lakeFlushFiles, lateEvents, windowsFinalised } from "./metrics.ts";

/** Process totals at one moment, and the worst consumer lag then. */
export interface StatusSnapshot {
  /** Epoch milliseconds. */
  at: number;
  accepted: number;
  rejected: number;
  alerts: number;
  windowsFinal: number;
  lakeFiles: number;
  lakeCommits: number;
  late: number;
  dead: number;
  /** Records of events.raw the slowest job has not committed; null while unknown. */
  lag: number | null;
}

export interface StatusFigures extends StatusSnapshot {
  eventsPerS: number;
  alertsPerMin: number;
}

/** Reads the process's metrics. */
export function readSnapshot(lag: number | null, at = Date.now()): StatusSnapshot {
  return {
    at,
    accepted: ingestEvents.total({ status: "accepted" }),
    rejected: ingestEvents.total({ status: "rejected" }),
    alerts: alertsRaised.total(),
    windowsFinal: windowsFinalised.total(),
    lakeFiles: lakeFlushFiles.total(),
    lakeCommits: deltaCommits.total({ outcome: "committed" }),
    late: lateEvents.total(),
    dead: deadRecords.total(),
    lag,
  };
}

/** How fast `pick` grew from `earlier` to `later`, per `perMs` milliseconds; 0 without an earlier snapshot. */
export function rate(earlier: StatusSnapshot | undefined, later: StatusSnapshot, pick: (s: StatusSnapshot) => number, perMs: number): number {
  const elapsed = earlier ? later.at - earlier.at : 0;
  if (!earlier || elapsed <= 0) return 0;
  return (Math.max(0, pick(later) - pick(earlier)) * perMs) / elapsed;
}

/** The newest snapshot at least `spanMs` older than the last one, else the oldest (history is oldest first). */
function spanStart(history: readonly StatusSnapshot[], spanMs: number): StatusSnapshot | undefined {
  const last = history[history.length - 1];
  if (!last || history.length < 2) return undefined;
  for (let i = history.length - 2; i >= 0; i--) {
    const s = history[i];
    if (s && last.at - s.at >= spanMs) return s;
  }
  return history[0];
}

/** Events per second over the last few seconds, alerts per minute over the last minute (or what history there is). */
export const EVENTS_RATE_SPAN_MS = 5_000;
export const ALERTS_RATE_SPAN_MS = 60_000;

/** The figures of the newest snapshot of `history` (oldest first), with its rates. */
export function figuresOf(history: readonly StatusSnapshot[]): StatusFigures | undefined {
  const last = history[history.length - 1];
  if (!last) return undefined;
  return {
    ...last,
    eventsPerS: rate(spanStart(history, EVENTS_RATE_SPAN_MS), last, (s) => s.accepted, 1_000),
    alertsPerMin: rate(spanStart(history, ALERTS_RATE_SPAN_MS), last, (s) => s.alerts, 60_000),
  };
}

const grouped = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** 12,345 */
export const fullNumber = (n: number) => grouped.format(Math.round(n));

/** 999, 1.2k, 12k, 1M, 1.2M, 12M, 1.2G (a figure that would read 1000k reads 1M). */
export function shortNumber(n: number): string {
  const rounded = Math.round(n);
  const abs = Math.abs(rounded);
  const [size, unit] = abs >= 999_500_000 ? [1e9, "G"] : abs >= 999_500 ? [1e6, "M"] : abs >= 1_000 ? [1e3, "k"] : [1, ""];
  const scaled = rounded / size;
  return `${Math.abs(scaled) < 10 && unit ? scaled.toFixed(1).replace(/\.0$/, "") : Math.round(scaled)}${unit}`;
}

/** Rates keep one decimal below 10 (a trickle of alerts reads 0.4/min, not 0). */
const rateWith = (format: (n: number) => string) => (n: number) => (n > 0 && n < 10 ? n.toFixed(1) : format(n));

/** A part of the status line, in words or terse, with numbers in full or short; rank 1 is dropped last. */
interface Segment {
  text: (wordy: boolean, n: (value: number) => string) => string;
  rank: number;
}

function segmentsOf(f: StatusFigures): Segment[] {
  return [
    { text: (w, n) => `${rateWith(n)(f.eventsPerS)} ${w ? "events/s" : "ev/s"}`, rank: 1 },
    { text: (w, n) => (w ? `accepted ${n(f.accepted)} rejected ${n(f.rejected)}` : `acc ${n(f.accepted)} rej ${n(f.rejected)}`), rank: 2 },
    { text: (w, n) => `${rateWith(n)(f.alertsPerMin)} ${w ? "alerts/min" : "al/min"}`, rank: 5 },
    { text: (w, n) => (w ? `${n(f.windowsFinal)} windows final` : `win ${n(f.windowsFinal)}`), rank: 7 },
    { text: (w, n) => (w ? `lake ${n(f.lakeFiles)} files/${n(f.lakeCommits)} commits` : `lake ${n(f.lakeFiles)}f/${n(f.lakeCommits)}c`), rank: 8 },
    { text: (_, n) => `lag ${f.lag === null ? "?" : n(f.lag)}`, rank: 3 },
    { text: (_, n) => `late ${n(f.late)}`, rank: 6 },
    { text: (_, n) => `dead ${n(f.dead)}`, rank: 4 },
  ];
}

/**
 * The live line, at most `columns` characters: in words if that fits, else terse, then with short numbers,
 * then with bare separators, then less its least important parts, and at last cut with "…".
 */
export function formatStatusLine(f: StatusFigures, columns: number): string {
  const width = Math.max(1, Math.floor(columns));
  const segments = segmentsOf(f);
  const terse = (kept: Segment[], separator: string) => kept.map((s) => s.text(false, shortNumber)).join(separator);
  const attempts = [segments.map((s) => s.text(true, fullNumber)).join(" | "), segments.map((s) => s.text(false, fullNumber)).join(" | "), terse(segments, " | "), terse(segments, "|")];
  for (const line of attempts) if (line.length <= width) return line;
  const kept = [...segments];
  while (kept.length > 1) {
    const least = kept.reduce((a, b) => (b.rank > a.rank ? b : a));
    kept.splice(kept.indexOf(least), 1);
    const line = terse(kept, "|");
    if (line.length <= width) return line;
  }
  const only = terse(kept, "");
  return only.length <= width ? only : `${only.slice(0, Math.max(0, width - 1))}…`;
}

/** The fields of the periodic `status` log line (no terminal). */
export function statusFields(f: StatusFigures) {
  return {
    events_per_s: Math.round(f.eventsPerS * 10) / 10,
    accepted: f.accepted,
    rejected: f.rejected,
    alerts_per_min: Math.round(f.alertsPerMin * 10) / 10,
    alerts: f.alerts,
    windows_final: f.windowsFinal,
    lake_files: f.lakeFiles,
    lake_commits: f.lakeCommits,
    consumer_lag: f.lag,
    late: f.late,
    dead_lettered: f.dead,
  };
}

/** 45s, 12m 05s, 3h 07m, 2d 04h */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3_600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3_600)}h ${pad(Math.floor((s % 3_600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d ${pad(Math.floor((s % 86_400) / 3_600))}h`;
}

/** Printed once when the process stops: the run's totals. */
export function formatFinalSummary(s: StatusSnapshot, uptimeMs: number): string {
  const rows: [string, string][] = [
    ["events", `${fullNumber(s.accepted)} accepted, ${fullNumber(s.rejected)} rejected`],
    ["alerts", fullNumber(s.alerts)],
    ["windows", `${fullNumber(s.windowsFinal)} finalised, ${fullNumber(s.late)} late events`],
    ["lake", `${fullNumber(s.lakeCommits)} commits, ${fullNumber(s.lakeFiles)} files`],
    ["dead letters", fullNumber(s.dead)],
  ];
  return ["", `devpipe stopped after ${formatDuration(uptimeMs)}`, ...rows.map(([label, value]) => `  ${label.padEnd(14)}${value}`), "", ""].join("\n");
}

const CLEAR_LINE = "\r\x1b[2K";

export interface StatusLineOptions {
  /** Live line on a terminal, else periodic log lines. */
  tty: boolean;
  /** Terminal width (re-read at each draw: the window may be resized). */
  columns: () => number;
  /** Where the live line goes: the stream the logs go to, so lines never interleave out of order. */
  write: (text: string) => void;
  /** Writes one log line (the logger's default output, which this replaces while the live line is shown). */
  writeLog: (line: string) => void;
  logger: Logger;
  /** Period of the `status` log line without a terminal; 0: none. */
  intervalMs: number;
  /** The worst consumer lag now; may fail (shown as unknown). */
  lag: () => Promise<number>;
  now?: () => number;
}

/** On a terminal the line is redrawn at this period. */
export const LIVE_REFRESH_MS = 1_000;

/**
 * Starts the live line (terminal) or the periodic status log. While the live line is shown, every log
 * line of the process clears it, is written, and the line is drawn again below it.
 */
export function startStatusLine(options: StatusLineOptions): { stop: () => void } {
  const now = options.now ?? Date.now;
  let lag: number | null = null;
  let probing = false;
  const probeLag = () => {
    if (probing) return;
    probing = true;
    options.lag().then(
      (value) => {
        lag = value;
      },
      () => {
        lag = null;
      },
    ).finally(() => {
      probing = false;
    });
  };
  probeLag();
  const history: StatusSnapshot[] = [readSnapshot(lag, now())];
  const sample = () => {
    history.push(readSnapshot(lag, now()));
    const horizon = now() - ALERTS_RATE_SPAN_MS - 2 * LIVE_REFRESH_MS;
    while (history.length > 2 && (history[0]?.at ?? 0) < horizon) history.shift();
    probeLag();
    return figuresOf(history);
  };

  if (!options.tty) {
    if (options.intervalMs <= 0) return { stop: () => undefined };
    // The lag is asked for afresh each time: a 10 s old figure would be stale in a line logged every 10 s.
    const timer = setInterval(async () => {
      lag = await options.lag().catch(() => null);
      const f = sample();
      if (f) options.logger.info("status", statusFields(f));
    }, options.intervalMs);
    return { stop: () => clearInterval(timer) };
  }

  let shown = "";
  const draw = () => {
    if (shown) options.write(`${CLEAR_LINE}${shown}`);
  };
  const restoreLogs = setProcessLogSink((line) => {
    if (shown) options.write(CLEAR_LINE);
    options.writeLog(line);
    draw();
  });
  // Never the last column: some terminals wrap there, and the next \r would redraw on a new line.
  const refresh = () => {
    const f = sample();
    if (!f) return;
    shown = formatStatusLine(f, options.columns() - 1);
    draw();
  };
  const timer = setInterval(refresh, LIVE_REFRESH_MS);
  let stopped = false;
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      if (shown) options.write(CLEAR_LINE);
      shown = "";
      restoreLogs();
    },
  };
}
