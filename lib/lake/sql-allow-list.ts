import { z } from "zod";

/**
 * POST /v1/query's guard: the statement's parse tree, as DuckDB's own parser gives it
 * (`json_serialize_sql`), may reference only the lake's views and dims, CTEs the statement defines,
 * and the functions below. The walk is generic over the JSON: every object that names a table or a
 * function is checked wherever it sits, and kinds of node this file does not know are refused, so a
 * new construct cannot slip a reference past it.
 */

const operators = ["+", "-", "*", "/", "//", "%", "**", "^", "||", "~~", "!~~", "~~*", "!~~*", "~~~", "&", "|", "<<", ">>", "~", "@", "^@", "->>", "@>", "<@", "&&"];
const math = ["abs", "ceil", "ceiling", "floor", "round", "round_even", "roundbankers", "trunc", "sign", "sqrt", "cbrt", "exp", "ln", "log", "log2", "log10", "pow", "power", "pi", "degrees", "radians", "sin", "cos", "tan", "cot", "asin", "acos", "atan", "atan2", "greatest", "least", "gcd", "lcm", "isnan", "isinf", "isfinite", "even", "fmod", "fdiv", "add", "subtract", "multiply", "divide", "random", "bit_count", "xor"];
const strings = [
  "lower", "upper", "lcase", "ucase", "length", "len", "strlen", "char_length", "character_length", "concat", "concat_ws", "substring", "substr", "left", "right", "trim", "ltrim", "rtrim", "lpad", "rpad",
  "replace", "reverse", "repeat", "strpos", "instr", "position", "contains", "starts_with", "ends_with", "prefix", "suffix", "like_escape", "ilike_escape", "regexp_matches", "regexp_replace",
  "regexp_extract", "regexp_extract_all", "regexp_full_match", "regexp_split_to_array", "string_split", "str_split", "string_split_regex", "str_split_regex", "split_part", "string_to_array", "format",
  "printf", "ascii", "chr", "unicode", "ord", "md5", "sha256", "hash", "levenshtein", "damerau_levenshtein", "hamming", "jaccard", "jaro_similarity", "jaro_winkler_similarity", "strip_accents",
  "nfc_normalize", "translate", "array_to_string", "format_bytes",
];
const dateTime = [
  "date_trunc", "datetrunc", "date_part", "datepart", "date_diff", "datediff", "date_sub", "datesub", "date_add", "time_bucket", "strftime", "strptime", "try_strptime", "epoch", "epoch_ms", "epoch_us",
  "epoch_ns", "make_date", "make_time", "make_timestamp", "make_timestamptz", "to_timestamp", "age", "year", "month", "day", "hour", "minute", "second", "millisecond", "microsecond", "week",
  "weekofyear", "weekday", "dayofweek", "isodow", "dayofmonth", "dayofyear", "quarter", "yearweek", "isoyear", "decade", "century", "era", "last_day", "dayname", "monthname", "now", "today",
  "current_date", "get_current_timestamp", "get_current_time", "transaction_timestamp", "to_days", "to_hours", "to_minutes", "to_seconds", "to_milliseconds", "to_microseconds", "to_weeks",
  "to_months", "to_quarters", "to_years", "to_decades", "to_centuries", "to_millennia", "julian",
];
const conditional = ["nullif", "typeof"];
const json = ["to_json", "json_extract", "json_extract_string", "json_value", "json_exists", "json_array_length", "json_keys", "json_type", "json_valid", "json_object", "json_array"];
const lists = [
  "list_value", "list_pack", "struct_pack", "row", "struct_extract", "array_extract", "list_extract", "list_element", "array_slice", "list_slice", "list_contains", "list_has", "array_contains",
  "array_has", "list_position", "list_indexof", "array_position", "array_length", "list_sort", "array_sort", "list_reverse_sort", "list_distinct", "array_distinct", "list_unique", "list_transform",
  "array_transform", "apply", "list_apply", "list_filter", "array_filter", "filter", "list_reduce", "array_reduce", "reduce", "list_concat", "array_concat", "list_cat", "flatten", "unnest",
  "list_sum", "list_avg", "list_min", "list_max", "list_count", "list_first", "list_last", "list_has_any", "list_has_all", "list_zip",
];
const aggregates = [
  "count", "count_star", "sum", "avg", "mean", "min", "max", "median", "mode", "quantile", "quantile_cont", "quantile_disc", "approx_count_distinct", "approx_quantile", "string_agg", "group_concat",
  "listagg", "list", "array_agg", "first", "last", "any_value", "arbitrary", "arg_min", "arg_max", "argmin", "argmax", "min_by", "max_by", "bool_and", "bool_or", "stddev", "stddev_samp",
  "stddev_pop", "variance", "var_samp", "var_pop", "corr", "covar_pop", "covar_samp", "regr_slope", "regr_intercept", "regr_r2", "regr_count", "regr_avgx", "regr_avgy", "entropy", "kurtosis",
  "kurtosis_pop", "skewness", "histogram", "bit_and", "bit_or", "bit_xor", "product", "fsum", "sumkahan", "kahan_sum", "favg", "count_if", "countif", "mad", "sem", "weighted_avg", "wavg",
  "geomean", "geometric_mean",
];
const windows = ["row_number", "rank", "dense_rank", "rank_dense", "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value", "last_value", "nth_value"];

/** Every function (and operator, which DuckDB parses as a function) a query may call. */
export const allowedFunctions: ReadonlySet<string> = new Set([...operators, ...math, ...strings, ...dateTime, ...conditional, ...json, ...lists, ...aggregates, ...windows]);

/** Expression kinds (`class`) a query may use; functions among them are checked by name. */
const EXPRESSION_CLASSES = new Set(["COLUMN_REF", "CONSTANT", "FUNCTION", "WINDOW", "AGGREGATE", "OPERATOR", "CAST", "CASE", "COMPARISON", "CONJUNCTION", "BETWEEN", "SUBQUERY", "LAMBDA", "LAMBDA_REF", "STAR", "COLLATE", "POSITIONAL_REFERENCE", "PARAMETER"]);
/** FROM-clause kinds a query may use; BASE_TABLE is checked by name. Table functions, SHOW/DESCRIBE and the rest are refused. */
const TABLE_REF_TYPES = new Set(["BASE_TABLE", "JOIN", "SUBQUERY", "EMPTY", "EXPRESSION_LIST", "PIVOT"]);
const QUERY_NODE_TYPES = new Set(["SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"]);

/** What `json_serialize_sql` returns. */
export const SerializedSql = z.union([
  z.object({ error: z.literal(false), statements: z.array(z.unknown()) }),
  z.object({ error: z.literal(true), error_type: z.string().optional(), error_message: z.string().optional() }),
]);

export type StatementCheck = { ok: true; tables: string[] } | { ok: false; reason: string };

class Refused extends Error {}

type Node = Record<string, unknown>;
const isNode = (value: unknown): value is Node => typeof value === "object" && value !== null && !Array.isArray(value);
const text = (value: unknown) => (typeof value === "string" ? value : "");
const qualified = (...parts: unknown[]) => parts.map(text).filter((p) => p !== "").join(".");

/** Checks one parsed statement: `tables` are the names it may read (view and dim names, lower case). */
export function checkParsedStatement(serialized: unknown, tables: ReadonlySet<string>): StatementCheck {
  const parsed = SerializedSql.safeParse(serialized);
  if (!parsed.success) return { ok: false, reason: "the statement could not be checked" };
  if (parsed.data.error) return { ok: false, reason: `only one SELECT (or WITH … SELECT) statement is allowed: ${parsed.data.error_message ?? parsed.data.error_type ?? "it does not parse"}` };
  const { statements } = parsed.data;
  if (statements.length !== 1) return { ok: false, reason: `exactly one SELECT statement is allowed; this request has ${statements.length}` };
  const read = new Set<string>();
  try {
    walk(statements[0], new Set(), { tables, read });
  } catch (error) {
    if (error instanceof Refused) return { ok: false, reason: error.message };
    if (error instanceof RangeError) return { ok: false, reason: "the statement is nested too deeply" };
    throw error;
  }
  return { ok: true, tables: [...read].sort() };
}

interface Walk {
  tables: ReadonlySet<string>;
  /** The allowed tables the statement reads. */
  read: Set<string>;
}

/**
 * Visits every value under `value`. `ctes` are the CTE names in scope: a WITH list's entries see the
 * ones before them (a later one, or a non-recursive self-reference, would be a catalog table in
 * DuckDB), the rest of the query sees them all, and a recursive CTE sees itself only in its recursive
 * term.
 */
function walk(value: unknown, ctes: ReadonlySet<string>, state: Walk): void {
  if (Array.isArray(value)) {
    for (const item of value) walk(item, ctes, state);
    return;
  }
  if (!isNode(value)) return;
  checkNode(value, ctes, state);

  let scope = ctes;
  const cteEntries = isNode(value.cte_map) && Array.isArray(value.cte_map.map) ? value.cte_map.map : undefined;
  if (cteEntries) {
    for (const entry of cteEntries) {
      if (!isNode(entry) || typeof entry.key !== "string") throw new Refused("a WITH clause this server does not understand");
      walk(entry.value, scope, state);
      scope = new Set([...scope, entry.key.toLowerCase()]);
    }
  }
  for (const [field, child] of Object.entries(value)) {
    if (field === "cte_map" && cteEntries) continue;
    const recursiveTerm = value.type === "RECURSIVE_CTE_NODE" && field === "right" && typeof value.cte_name === "string";
    walk(child, recursiveTerm ? new Set([...scope, text(value.cte_name).toLowerCase()]) : scope, state);
  }
}

function checkNode(node: Node, ctes: ReadonlySet<string>, state: Walk): void {
  const kind = text(node.type);
  if (typeof node.class === "string") {
    if (!EXPRESSION_CLASSES.has(node.class)) throw new Refused(`${node.class.toLowerCase()} expressions are not allowed in queries`);
  } else if ("sample" in node && "alias" in node && kind !== "") {
    if (!TABLE_REF_TYPES.has(kind)) {
      const fn = isNode(node.function) ? qualified(node.function.schema, node.function.function_name) : "";
      throw new Refused(fn ? `table function ${fn}() is not allowed in queries; read the lake's views instead` : `${kind.toLowerCase().replaceAll("_", " ")} is not allowed in queries`);
    }
  } else if (kind.endsWith("_NODE") && !QUERY_NODE_TYPES.has(kind)) {
    throw new Refused(`${kind.toLowerCase().replaceAll("_", " ")} is not allowed in queries`);
  }
  if ("table_name" in node) checkTable(node, ctes, state);
  if ("function_name" in node) checkFunction(node);
}

function checkTable(node: Node, ctes: ReadonlySet<string>, state: Walk): void {
  const name = text(node.table_name).toLowerCase();
  const full = qualified(node.catalog_name, node.schema_name, node.table_name);
  if (text(node.catalog_name) !== "" || text(node.schema_name) !== "") throw new Refused(`table ${full} is not available to queries: name the lake's views without a schema`);
  if (ctes.has(name)) return;
  if (!state.tables.has(name)) throw new Refused(`table ${full || "(unnamed)"} is not available to queries; they read the views ${[...state.tables].join(", ")}`);
  state.read.add(name);
}

function checkFunction(node: Node): void {
  const name = text(node.function_name).toLowerCase();
  const schema = text(node.schema).toLowerCase();
  const full = qualified(node.catalog, node.schema, node.function_name);
  if (text(node.catalog) !== "" || (schema !== "" && schema !== "main")) throw new Refused(`function ${full}() is not allowed in queries`);
  if (!allowedFunctions.has(name)) throw new Refused(`function ${full}() is not allowed in queries`);
}
