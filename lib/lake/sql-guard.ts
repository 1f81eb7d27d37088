/**
 * The text-level half of the POST /v1/query guard: only the size. What the statement may do is
 * decided from DuckDB's parse tree (sql-allow-list.ts), never from the text, and the database it runs
 * in is locked as well (query-process.ts).
 */

/** Longest SQL text accepted, in UTF-8 bytes: DuckDB's parser is not interruptible, so its input is kept small. */
export const MAX_SQL_BYTES = 16 * 1024;

/** Null when the text is worth parsing, or why it is not. */
export function sqlTextProblem(sql: string): string | null {
  if (sql.trim() === "") return "the query is empty";
  const bytes = Buffer.byteLength(sql, "utf8");
  if (bytes > MAX_SQL_BYTES) return `the query is ${bytes} bytes long; at most ${MAX_SQL_BYTES} bytes are accepted`;
  return null;
}
