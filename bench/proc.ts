import { readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100;

/** A process's parent and the CPU seconds (user + system) it has used so far, from /proc/<pid>/stat. */
export function procStat(pid: number): { ppid: number; cpuS: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { ppid: Number(fields[1]), cpuS: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND };
}

export function cpuSeconds(pid: number): number {
  return procStat(pid).cpuS;
}

/** Resident memory of a process, MiB, unrounded. */
export function rssMb(pid: number): number {
  return kbOf(readFileSync(`/proc/${pid}/status`, "utf8"), "VmRSS") / 1024;
}

/** Resident memory of a process by kind, MiB: anonymous (heaps, JS, WASM memory) and file-backed (code, mapped files). */
export function rssKindsMb(pid: number): { anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return { anon: kbOf(status, "RssAnon") / 1024, file: kbOf(status, "RssFile") / 1024 };
}

const kbOf = (status: string, name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);

/** Resident and peak resident memory of a process, MiB. */
export function memoryMb(pid: number): { rss_mb: number; peak_rss_mb: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return { rss_mb: Math.round(kbOf(status, "VmRSS") / 1024), peak_rss_mb: Math.round(kbOf(status, "VmHWM") / 1024) };
}

export function percentile(sorted: number[], p: number): number {
  return Math.round((sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0) * 100) / 100;
}
