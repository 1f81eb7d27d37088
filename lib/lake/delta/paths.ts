/** Where a Delta table's log lives under its root key (PROTOCOL.md, "Delta Log Entries", "Checkpoints"). */
const pad = (version: number) => String(version).padStart(20, "0");

export const logPrefix = (table: string) => `${table}/_delta_log/`;
export const commitKey = (table: string, version: number) => `${logPrefix(table)}${pad(version)}.json`;
export const checkpointKey = (table: string, version: number) => `${logPrefix(table)}${pad(version)}.checkpoint.parquet`;
export const lastCheckpointKey = (table: string) => `${logPrefix(table)}_last_checkpoint`;

export type LogEntry = { kind: "commit" | "checkpoint"; version: number; key: string };

const ENTRY = /\/_delta_log\/(\d{20})\.(json|checkpoint\.parquet)$/;

/** A commit or classic single-file checkpoint; null for anything else (multi-part or v2 checkpoints, crc, temp files). */
export function parseLogKey(key: string): LogEntry | null {
  const match = ENTRY.exec(key);
  if (!match?.[1]) return null;
  return { kind: match[2] === "json" ? "commit" : "checkpoint", version: Number(match[1]), key };
}
