import { copyFile, link, mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import { LakeError } from "../errors.ts";
import { assertValidKey, type ObjectInfo, type ObjectStore } from "./types.ts";

/** Makes a directory's entries (files linked or created in it) survive a crash. */
async function syncDir(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Objects as files under a local directory; writes go to a temporary file that is renamed in place. */
const STATS_AT_ONCE = 64;

export function createDirStore(root: string): ObjectStore {
  const pathOf = (key: string) => {
    assertValidKey(key);
    return join(root, key);
  };
  /** Readers see the old file or the new one: the bytes go to a temporary file renamed over the key. */
  const writeAtomically = async (key: string, write: (temporary: string) => Promise<void>) => {
    const path = pathOf(key);
    await mkdir(dirname(path), { recursive: true });
    const temporary = join(dirname(path), `.tmp-${crypto.randomUUID()}`);
    try {
      await write(temporary);
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw new LakeError(`write ${key}: ${String(error)}`, { cause: error });
    }
  };

  const walk = async (dir: string): Promise<ObjectInfo[]> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return [];
      throw error;
    });
    const found: ObjectInfo[] = [];
    const files: string[] = [];
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) found.push(...(await walk(path)));
      else if (entry.isFile() && !entry.name.startsWith(".tmp-")) files.push(path);
    }
    // Stats in parallel: a Delta log directory holds tens of thousands of entries.
    for (let i = 0; i < files.length; i += STATS_AT_ONCE) {
      const slice = files.slice(i, i + STATS_AT_ONCE);
      const sizes = await Promise.all(slice.map((path) => stat(path).then((s) => s.size, () => undefined)));
      slice.forEach((path, j) => {
        const size = sizes[j];
        // A file deleted between readdir and stat is simply gone.
        if (size !== undefined) found.push({ key: relative(root, path).split(sep).join("/"), size });
      });
    }
    return found;
  };

  return {
    kind: "dir",
    root: `file://${root}`,

    put: (key, data) => writeAtomically(key, (temporary) => writeFile(temporary, data)),

    async putIfAbsent(key, data) {
      const path = pathOf(key);
      const dir = dirname(path);
      const temporary = join(dir, `.tmp-${crypto.randomUUID()}`);
      try {
        const created = await mkdir(dir, { recursive: true });
        // New directories need their own entries synced too, up to the first one that already existed.
        if (created !== undefined) for (let d = dir; d !== dirname(created); d = dirname(d)) await syncDir(dirname(d));
        const handle = await open(temporary, "wx");
        try {
          await handle.writeFile(data);
          await handle.sync();
        } finally {
          await handle.close();
        }
        // link() fails with EEXIST when the name is taken, atomically across processes; readers never see a
        // partial file because the bytes were complete before the name appeared (unlike open(path, "wx")).
        try {
          await link(temporary, path);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
          throw error;
        }
        await syncDir(dir);
        return true;
      } catch (error) {
        throw new LakeError(`put ${key} if absent: ${String(error)}`, { cause: error });
      } finally {
        await rm(temporary, { force: true });
      }
    },

    putFile: (key, localPath) => writeAtomically(key, (temporary) => copyFile(localPath, temporary)),

    localPath: pathOf,

    async get(key) {
      try {
        return new Uint8Array(await readFile(pathOf(key)));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
        throw new LakeError(`read ${key}: ${String(error)}`, { cause: error });
      }
    },

    async list(prefix, options = {}) {
      // Walk only the deepest directory the prefix names in full.
      const base = prefix.includes("/") ? prefix.slice(0, prefix.lastIndexOf("/")) : "";
      const found = await walk(base ? join(root, base) : root);
      const after = options.startAfter;
      return found.filter((o) => o.key.startsWith(prefix) && (after === undefined || o.key > after)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    },

    async delete(keys) {
      await Promise.all(keys.map((key) => rm(pathOf(key), { force: true })));
    },

    async ping() {
      try {
        await mkdir(root, { recursive: true });
        const probe = join(root, `.tmp-ping-${crypto.randomUUID()}`);
        await writeFile(probe, "");
        await rm(probe);
      } catch (error) {
        throw new LakeError(`lake directory ${root} is not writable: ${String(error)}`, { retriable: true, cause: error });
      }
    },

    // link() is atomic on every local filesystem that supports hard links; putIfAbsent fails loudly on one that does not.
    async checkConditionalWrites() {},
  };
}
