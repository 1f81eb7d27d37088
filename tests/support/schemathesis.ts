import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * schemathesis (Python, pinned in scripts/python-requirements.txt) from the cached virtualenv that
 * scripts/python-venv.sh builds. `bun run test` builds it first and exports DEVPIPE_VENV; a test run on
 * its own (`bun test tests/e2e/fuzz.test.ts`) builds or finds it here, the same way.
 */

const repo = new URL("../../", import.meta.url).pathname;

export function schemathesisVenv(): string {
  const fromEnv = process.env.DEVPIPE_VENV;
  if (fromEnv && existsSync(join(fromEnv, "bin", "st"))) return fromEnv;
  const result = Bun.spawnSync(["bash", join(repo, "scripts/python-venv.sh")], { cwd: repo, stdout: "pipe", stderr: "inherit" });
  const venv = result.stdout.toString().trim().split("\n").pop() ?? "";
  if (result.exitCode !== 0 || !existsSync(join(venv, "bin", "st"))) throw new Error(`scripts/python-venv.sh failed (exit ${result.exitCode}): no schemathesis in "${venv}"`);
  return venv;
}

export interface StRun {
  /** The `st run …` arguments, as run (the API key filtered). */
  command: string;
  exitCode: number;
  /** stdout and stderr, interleaved as written. */
  output: string;
  seconds: number;
}

/** Runs `st` with `args` in `cwd` (where Hypothesis and schemathesis may write their scratch files), killed after `timeoutMs`. */
export async function runSt(venv: string, args: string[], opts: { cwd: string; env?: Record<string, string>; timeoutMs: number; redact?: string[] }): Promise<StRun> {
  const started = performance.now();
  const child = Bun.spawn([join(venv, "bin", "st"), ...args], {
    cwd: opts.cwd,
    // No colour, a wide terminal (the report's reproduction lines stay whole), nothing from the caller's Python setup.
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", COLUMNS: "200", NO_COLOR: "1", PYTHONDONTWRITEBYTECODE: "1", ...opts.env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs);
  const chunks: string[] = [];
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) chunks.push(decoder.decode(chunk, { stream: true }));
  };
  await Promise.all([drain(child.stdout), drain(child.stderr)]);
  const exitCode = await child.exited;
  clearTimeout(timer);
  let command = ["st", ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(" ");
  for (const secret of opts.redact ?? []) command = command.replaceAll(secret, "[key]");
  return { command, exitCode, output: chunks.join(""), seconds: (performance.now() - started) / 1000 };
}

/** What one run found, from its NDJSON event report (every scenario, case, check and interaction). */
export interface StTotals {
  /** Operations the run tested (`METHOD /path`), stateful scenarios aside. */
  operations: string[];
  /** Test cases generated and sent, over every phase (a stateful step counts as one case). */
  testCases: number;
  /** HTTP requests made (a case with a follow-up request, e.g. a stateful link, makes more than one). */
  requests: number;
  /** Cases sent with an application/x-ndjson body (through tests/fuzz/hooks.py). */
  ndjsonCases: number;
  /** Cases per phase. */
  byPhase: Record<string, number>;
  /** Distinct failures: operation × check × response status. */
  failures: { operation: string; check: string; status: number | null; phase: string; count: number; message: string }[];
  /** Errors schemathesis hit itself (a request that could not be sent, a schema it could not use). */
  errors: string[];
}

interface CheckRecord {
  name: string;
  status: string;
  failure_info?: { failure?: { title?: string; message?: string; code?: string } } | null;
}

export function readNdjsonReport(path: string): StTotals {
  const operations = new Set<string>();
  const failures = new Map<string, StTotals["failures"][number]>();
  const byPhase: Record<string, number> = {};
  const errors: string[] = [];
  const seenCases = new Set<string>();
  let requests = 0;
  let ndjsonCases = 0;
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (!line.trim()) continue;
    const event = JSON.parse(line) as Record<string, Record<string, unknown>>;
    const [kind, body] = Object.entries(event)[0] ?? [];
    if (!body) continue;
    if (kind === "NonFatalError" || kind === "FatalError") errors.push(JSON.stringify(body).slice(0, 500));
    if (kind !== "ScenarioFinished") continue;
    const phase = String(body.phase);
    // A skipped scenario (no examples in the schema) records a label and nothing else.
    const recorder = body.recorder as {
      label: string;
      cases?: Record<string, { value: { method?: string; path?: string; media_type?: string | null } }>;
      checks?: Record<string, CheckRecord[]>;
      interactions?: Record<string, { response?: { status_code?: number } | null }>;
    };
    const cases = recorder.cases ?? {};
    const interactions = recorder.interactions ?? {};
    const stateful = phase === "stateful";
    if (!stateful && !/^Stateful/.test(recorder.label)) operations.add(recorder.label);
    for (const [id, record] of Object.entries(cases)) {
      // A scenario that Hypothesis shrank reports its failing case again: count each case id once.
      if (seenCases.has(id)) continue;
      seenCases.add(id);
      byPhase[phase] = (byPhase[phase] ?? 0) + 1;
      if (record.value.media_type === "application/x-ndjson") ndjsonCases += 1;
    }
    requests += Object.keys(interactions).length;
    for (const [id, checks] of Object.entries(recorder.checks ?? {})) {
      const value = cases[id]?.value;
      const operation = value?.method && value.path ? `${value.method} ${value.path}` : recorder.label;
      const status = interactions[id]?.response?.status_code ?? null;
      for (const check of checks) {
        if (check.status !== "failure") continue;
        const key = `${operation}|${check.name}|${status}`;
        const seen = failures.get(key);
        if (seen) seen.count += 1;
        else {
          const failure = check.failure_info?.failure;
          failures.set(key, { operation, check: check.name, status, phase, count: 1, message: [failure?.title, failure?.message].filter(Boolean).join(": ").slice(0, 300) });
        }
      }
    }
  }
  return {
    operations: [...operations].sort(),
    testCases: seenCases.size,
    requests,
    ndjsonCases,
    byPhase,
    failures: [...failures.values()].sort((a, b) => a.operation.localeCompare(b.operation) || a.check.localeCompare(b.check)),
    errors,
  };
}

/** The numbers from schemathesis's own summary: "N generated, M found K unique failures", and the operations it tested. */
export function readSummary(output: string): { generated: number | null; uniqueFailures: number; tested: number | null } {
  const generated = /(\d+) generated/.exec(output);
  const unique = /(\d+) unique failures?/.exec(output);
  const tested = /Tested:\s+(\d+)/.exec(output);
  return { generated: generated ? Number(generated[1]) : null, uniqueFailures: unique ? Number(unique[1]) : 0, tested: tested ? Number(tested[1]) : null };
}

/** The report's FAILURES section (each with its curl reproduction), for a failing test's message. */
export function failuresSection(output: string): string {
  const start = output.indexOf("FAILURES");
  if (start < 0) return "";
  const end = output.indexOf("SUMMARY", start);
  return output.slice(output.lastIndexOf("\n", start) + 1, end < 0 ? undefined : output.lastIndexOf("\n", end));
}
