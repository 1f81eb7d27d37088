import { mkdir, open, readdir, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import type { PartitionOffset } from "../types.ts";

type GroupPositions = Record<string, Record<string, number>>;

/**
 * Committed positions of consumer groups, one JSON file per group, replaced atomically
 * (write to a temporary file, fsync, rename) so a crash leaves the old or the new file, never half.
 */
export class OffsetStore {
  private readonly groups = new Map<string, GroupPositions>();
  private readonly writes = new Map<string, Promise<void>>();

  private constructor(private readonly dir: string) {}

  static async open(dir: string): Promise<OffsetStore> {
    await mkdir(dir, { recursive: true });
    const store = new OffsetStore(dir);
    for (const name of await readdir(dir)) {
      if (!name.endsWith(".json")) continue;
      const group = decodeURIComponent(name.slice(0, -".json".length));
      store.groups.set(group, JSON.parse(await readFile(join(dir, name), "utf8")) as GroupPositions);
    }
    return store;
  }

  get(group: string, topic: string, partition: number): number | null {
    return this.groups.get(group)?.[topic]?.[String(partition)] ?? null;
  }

  /** Commits are applied in call order per group; each resolves when it is on disk. */
  commit(group: string, positions: PartitionOffset[]): Promise<void> {
    const current = structuredClone(this.groups.get(group) ?? {});
    for (const p of positions) (current[p.topic] ??= {})[String(p.partition)] = p.offset;
    this.groups.set(group, current);
    const snapshot = JSON.stringify(current);
    const previous = this.writes.get(group) ?? Promise.resolve();
    const write = previous.catch(() => undefined).then(() => this.write(group, snapshot));
    this.writes.set(group, write);
    return write;
  }

  private async write(group: string, json: string) {
    const path = join(this.dir, `${encodeURIComponent(group)}.json`);
    const temporary = `${path}.tmp`;
    const file = await open(temporary, "w");
    try {
      await file.writeFile(json);
      await file.datasync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
  }

  async flush(): Promise<void> {
    await Promise.allSettled(this.writes.values());
  }
}
