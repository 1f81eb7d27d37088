import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../../lib/config.ts";
import type { ApiKey } from "./keyring.ts";

/**
 * The keys the gateway accepts: API_KEYS when set; else one admin key, generated on first start and
 * kept in DATA_DIR/api-key (mode 0600) so it survives restarts. `generated` tells the caller to print it.
 */
export async function resolveApiKeys(config: Pick<Config, "apiKeys" | "dataDir">): Promise<{ keys: ApiKey[]; generated?: { key: string; path: string } }> {
  if (config.apiKeys) return { keys: config.apiKeys };
  const path = join(config.dataDir, "api-key");
  let key = (await readFile(path, "utf8").catch(() => "")).trim();
  if (!key) {
    key = `dp_${Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString("base64url")}`;
    await mkdir(config.dataDir, { recursive: true });
    await writeFile(path, `${key}\n`, { mode: 0o600 });
    await chmod(path, 0o600);
  }
  return { keys: [{ key, scopes: ["ingest", "query", "admin"] }], generated: { key, path } };
}
