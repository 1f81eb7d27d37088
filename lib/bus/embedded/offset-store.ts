import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { PartitionOffset } from "../types.ts";
import { writeAtomically } from "./write-atomically.ts";

type GroupPositions = Record<string, Record<string, number>>;

/**
 * A group's file. The first layout was the bare positions (`{ topic: { partition: offset } }`); files
 * now carry the time of the group's last commit per topic (what group-offset retention goes by, as
 * Kafka's offsets.retention.minutes). `$format` cannot be a topic name, so the layouts never mix up.
 */
interface GroupFile {
  $format: 2;
  positions: GroupPositions;
  /** Per topic, the wall-clock time (ms) of the group's last commit on it. */
  committed_at: Record<string, number>;
}

interface GroupState {
  positions: GroupPositions;
  committedAt: Record<string, number>;
}

/**
 * Committed positions of consumer groups, one JSON file per group, replaced atomically
 * (write to a temporary file, fsync, rename) so a crash leaves the old or the new file, never half.
 */
export class OffsetStore {
  private readonly groups = new Map<string, GroupState>();
  private readonly writes = new Map<string, Promise<void>>();

  private constructor(
    private readonly dir: string,
    private readonly clock: () => number,
  ) {}

  static async open(dir: string, clock: () => number = Date.now): Promise<OffsetStore> {
    await mkdir(dir, { recursive: true });
    const store = new OffsetStore(dir, clock);
    for (const name of await readdir(dir)) {
      if (!name.endsWith(".json")) continue;
      const group = decodeURIComponent(name.slice(0, -".json".length));
      const path = join(dir, name);
      const parsed = JSON.parse(await readFile(path, "utf8")) as GroupFile | GroupPositions;
      if ("$format" in parsed) {
        const file = parsed as GroupFile;
        store.groups.set(group, { positions: file.positions ?? {}, committedAt: file.committed_at ?? {} });
      } else {
        // The first layout: no commit times; the file's mtime is the time of its last commit.
        const positions = parsed as GroupPositions;
        const { mtimeMs } = await stat(path);
        store.groups.set(group, { positions, committedAt: Object.fromEntries(Object.keys(positions).map((topic) => [topic, mtimeMs])) });
      }
    }
    // A group's retention clock runs only while the bus is open: a pipeline stopped for a day must not
    // come back to find its own group expired and its unread records gone.
    const opened = clock();
    for (const state of store.groups.values()) for (const topic of Object.keys(state.committedAt)) state.committedAt[topic] = Math.max(state.committedAt[topic] ?? 0, opened);
    return store;
  }

  get(group: string, topic: string, partition: number): number | null {
    return this.groups.get(group)?.positions[topic]?.[String(partition)] ?? null;
  }

  /** When the group last committed a position on the topic (ms), null if never. */
  lastCommit(group: string, topic: string): number | null {
    return this.groups.get(group)?.committedAt[topic] ?? null;
  }

  /** The groups with a stored position on the topic. */
  groupsOn(topic: string): string[] {
    return [...this.groups].filter(([, state]) => state.positions[topic] !== undefined).map(([group]) => group);
  }

  /** Commits are applied in call order per group; each resolves when it is on disk. */
  commit(group: string, positions: PartitionOffset[]): Promise<void> {
    const current = structuredClone(this.groups.get(group) ?? { positions: {}, committedAt: {} });
    const now = this.clock();
    for (const p of positions) {
      (current.positions[p.topic] ??= {})[String(p.partition)] = p.offset;
      current.committedAt[p.topic] = now;
    }
    this.groups.set(group, current);
    const file: GroupFile = { $format: 2, positions: current.positions, committed_at: current.committedAt };
    const snapshot = JSON.stringify(file);
    const previous = this.writes.get(group) ?? Promise.resolve();
    const write = previous.catch(() => undefined).then(() => this.write(group, snapshot));
    this.writes.set(group, write);
    return write;
  }

  private async write(group: string, json: string) {
    await writeAtomically(join(this.dir, `${encodeURIComponent(group)}.json`), json);
  }

  async flush(): Promise<void> {
    await Promise.allSettled(this.writes.values());
  }
}
