/**
 * Where the CPU went during a lake benchmark phase on this box: the bench process, the services that
 * `bash scripts/services.sh up` started (Kafka, Postgres with its backends, the S3 server), and the
 * whole machine. Linux /proc only; a service whose pid file is missing counts as 0.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cpuSeconds } from "./proc.ts";

const stateDir = process.env.DEVPIPE_SERVICES_DIR ?? "/tmp/devpipe-services";

function pidIn(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, "utf8").split("\n")[0]);
  return Number.isInteger(pid) && pid > 0 && existsSync(`/proc/${pid}`) ? pid : undefined;
}

/** The process and every descendant of it, by /proc's parent links. */
function treeOf(root: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // The process ended while listing.
    }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const [pid, parent] of parents) if (parent === tree[i]) tree.push(pid);
  return tree;
}

const cpuOf = (pids: number[]) =>
  pids.reduce((sum, pid) => {
    try {
      return sum + cpuSeconds(pid);
    } catch {
      return sum;
    }
  }, 0);

/** Busy and total jiffies of the machine (all cores), from /proc/stat. */
function machine(): { busy: number; total: number } {
  const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

export interface UsageSample {
  self: number;
  kafka: number;
  postgres: number;
  s3: number;
  machine: { busy: number; total: number };
}

export function sampleUsage(): UsageSample {
  const kafka = pidIn(join(stateDir, "kafka", "pid"));
  const postgres = pidIn(join(stateDir, "postgres", "data", "postmaster.pid"));
  const s3 = pidIn(join(stateDir, "s3", "pid"));
  const self = process.cpuUsage();
  return {
    // The bench process and its children (the query processes of the reader).
    self: (self.user + self.system) / 1e6 + cpuOf(treeOf(process.pid).slice(1)),
    kafka: kafka ? cpuOf([kafka]) : 0,
    postgres: postgres ? cpuOf(treeOf(postgres)) : 0,
    s3: s3 ? cpuOf([s3]) : 0,
    machine: machine(),
  };
}

const round = (n: number) => Math.round(n * 100) / 100;
/** /proc/stat counts in USER_HZ, 100 per second on Linux. */
const JIFFIES_PER_SECOND = 100;

/**
 * CPU seconds each used since `before`; how busy the machine's cores were (1 = all of them); and the CPU
 * seconds of everything else on the machine (other sessions' tests on a shared box make a figure noisy).
 */
export function usageSince(before: UsageSample): Record<string, number> {
  const now = sampleUsage();
  const total = now.machine.total - before.machine.total;
  const busy = (now.machine.busy - before.machine.busy) / JIFFIES_PER_SECOND;
  // A process that ended in between takes its CPU time with it: a negative difference is clamped to 0.
  const since = (a: number, b: number) => Math.max(0, a - b);
  const used = { bench: since(now.self, before.self), kafka: since(now.kafka, before.kafka), postgres: since(now.postgres, before.postgres), s3: since(now.s3, before.s3) };
  return {
    cpu_s_bench: round(used.bench),
    cpu_s_kafka: round(used.kafka),
    cpu_s_postgres: round(used.postgres),
    cpu_s_s3: round(used.s3),
    cpu_s_other: round(Math.max(0, busy - used.bench - used.kafka - used.postgres - used.s3)),
    machine_busy: total > 0 ? round((now.machine.busy - before.machine.busy) / total) : 0,
  };
}

/** The machine's 1-minute load average: above the core count, other work competes with the bench. */
export const load1 = () => Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);

/**
 * Waits (up to `maxSeconds`) until the machine has been nearly idle for a few seconds in a row, so that a
 * measurement on a box shared with other work starts in a quiet spell. Returns the seconds waited.
 */
export async function waitQuiet(maxSeconds: number, idleBusy = 0.2, spellSeconds = 4): Promise<number> {
  const start = performance.now();
  let quiet = 0;
  while (quiet < spellSeconds && performance.now() - start < maxSeconds * 1000) {
    const before = machine();
    await Bun.sleep(1_000);
    const after = machine();
    const busy = (after.busy - before.busy) / Math.max(1, after.total - before.total);
    quiet = busy < idleBusy ? quiet + 1 : 0;
  }
  return Math.round((performance.now() - start) / 100) / 10;
}
