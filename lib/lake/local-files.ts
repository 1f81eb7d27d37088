import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { LakeError } from "../errors.ts";
import type { ObjectStore } from "./types.ts";

/**
 * Local paths of lake objects, for DuckDB to read. A directory lake is read in place; an S3 lake goes
 * through a read-through cache of whole files (objects are immutable: a key always names the same
 * rows), so querying needs no httpfs extension.
 */
export interface LocalFiles {
  /** The directory every returned path is under (DuckDB may read there and nowhere else). */
  readonly root: string;
  paths(keys: string[]): Promise<string[]>;
  /** Drops cached copies of objects that are gone. */
  evict(keys: string[]): Promise<void>;
  /**
   * Tells the cache which objects under `prefix` are live now: cached copies of others are dropped once
   * they have not been live for the grace period (a query that listed them may still be reading them).
   */
  retain(prefix: string, live: ReadonlySet<string>): Promise<void>;
}

/** How long a cached copy outlives its object's removal from the live set, by default. */
const RETIRED_GRACE_MS = 10 * 60_000;

const DOWNLOADS_AT_ONCE = 8;

/** Where a process keeps its copies of S3 lake objects. */
export const lakeCacheDir = (dataDir: string) => join(dataDir, "lake-cache");

export function localFiles(store: ObjectStore, cacheDir: string, options: { retiredGraceMs?: number } = {}): LocalFiles {
  const retiredGraceMs = options.retiredGraceMs ?? RETIRED_GRACE_MS;
  if (store.kind === "dir") {
    const inPlace = (key: string) => {
      const path = store.localPath(key);
      if (!path) throw new LakeError(`directory lake gave no path for ${key}`);
      return path;
    };
    return { root: store.root.replace(/^file:\/\//, ""), paths: async (keys) => keys.map(inPlace), evict: async () => undefined, retain: async () => undefined };
  }
  const inFlight = new Map<string, Promise<void>>();
  const cached = new Set<string>();
  /** Cached keys no longer live, and since when. */
  const retired = new Map<string, number>();
  const fetchOne = async (key: string, path: string) => {
    const bytes = await store.get(key);
    if (!bytes) throw new LakeError(`lake object ${key} is live in the Delta log but missing from ${store.root}`);
    await mkdir(dirname(path), { recursive: true });
    const temporary = `${path}.${crypto.randomUUID()}.part`;
    await writeFile(temporary, bytes);
    await rename(temporary, path);
    cached.add(key);
  };
  return {
    root: cacheDir,
    async paths(keys) {
      const missing = keys.filter((k) => !cached.has(k) && !(Bun.file(join(cacheDir, k)).size > 0));
      for (const key of keys) if (!missing.includes(key)) cached.add(key);
      for (let i = 0; i < missing.length; i += DOWNLOADS_AT_ONCE) {
        await Promise.all(
          missing.slice(i, i + DOWNLOADS_AT_ONCE).map((key) => {
            let download = inFlight.get(key);
            if (!download) {
              download = fetchOne(key, join(cacheDir, key)).finally(() => inFlight.delete(key));
              inFlight.set(key, download);
            }
            return download;
          }),
        );
      }
      return keys.map((key) => join(cacheDir, key));
    },
    async evict(keys) {
      for (const key of keys) {
        cached.delete(key);
        retired.delete(key);
        await rm(join(cacheDir, key), { force: true });
      }
    },
    async retain(prefix, live) {
      const now = Date.now();
      const expired: string[] = [];
      for (const key of cached) {
        if (!key.startsWith(prefix)) continue;
        if (live.has(key)) retired.delete(key);
        else if (!retired.has(key)) retired.set(key, now);
        else if (now - (retired.get(key) ?? now) >= retiredGraceMs) expired.push(key);
      }
      await this.evict(expired);
    },
  };
}
