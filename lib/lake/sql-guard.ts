/**
 * The text-level half of the POST /v1/query guard: the statement must read as a query, and may not
 * name DuckDB's catalog or settings functions. The other half is DuckDB itself: the statement must
 * parse as exactly one SELECT, and runs in a database whose external access and configuration are
 * locked (see query.ts), so a statement that slips past the text check still cannot touch files,
 * the network, extensions or settings.
 */
export const MAX_SQL_LENGTH = 100_000;

const FIRST_WORDS = new Set(["select", "with", "from", "values"]);
/** Functions that read DuckDB's catalog, settings or environment. */
const DENIED_FUNCTION = /(?:^|[^\w$])"?(duckdb_\w+|pragma_\w+|current_setting|getenv|which_secret|query_table|query)"?\s*\(/i;

/** Comments and string literals blanked out, so the checks below see only SQL. */
function codeOnly(sql: string): string {
  return sql
    .replace(/'(?:[^']|'')*'/g, "''")
    .replace(/--[^\n]*/g, " ")
    .replace(/\/\*[\s\S]*?\*\//g, " ");
}

/** Null when the text may be a read-only query, or why it may not. */
export function sqlTextProblem(sql: string): string | null {
  if (sql.trim() === "") return "the query is empty";
  if (sql.length > MAX_SQL_LENGTH) return `the query is longer than ${MAX_SQL_LENGTH} characters`;
  const code = codeOnly(sql);
  const first = /^[\s(]*([a-z_]+)/i.exec(code)?.[1]?.toLowerCase();
  if (!first || !FIRST_WORDS.has(first)) return `only a SELECT (or WITH … SELECT) statement is allowed, not ${first ? first.toUpperCase() : "this"}`;
  const denied = DENIED_FUNCTION.exec(code);
  if (denied) return `${denied[1]}() is not available to queries`;
  return null;
}
