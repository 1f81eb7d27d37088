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
}

const DOWNLOADS_AT_ONCE = 8;

/** Where a process keeps its copies of S3 lake objects. */
export const lakeCacheDir = (dataDir: string) => join(dataDir, "lake-cache");

export function localFiles(store: ObjectStore, cacheDir: string): LocalFiles {
  if (store.kind === "dir") {
    const inPlace = (key: string) => {
      const path = store.localPath(key);
      if (!path) throw new LakeError(`directory lake gave no path for ${key}`);
      return path;
    };
    return { root: store.root.replace(/^file:\/\//, ""), paths: async (keys) => keys.map(inPlace), evict: async () => undefined };
  }
  const inFlight = new Map<string, Promise<void>>();
  const cached = new Set<string>();
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
        await rm(join(cacheDir, key), { force: true });
      }
    },
  };
}
