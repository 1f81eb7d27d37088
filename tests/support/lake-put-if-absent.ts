/**
 * One racer for the dir store's cross-process putIfAbsent test:
 * `bun tests/support/lake-put-if-absent.ts <root> <key> <payload> <start-at-epoch-ms>` prints true or false.
 */
import { createDirStore } from "../../lib/lake/dir-store.ts";

const [root, key, payload, startAt] = process.argv.slice(2);
if (!root || !key || !payload || !startAt) throw new Error("usage: lake-put-if-absent.ts <root> <key> <payload> <start-at-epoch-ms>");
const store = createDirStore(root);
// Every racer starts at the same instant, so the processes really overlap instead of starting in turn.
await Bun.sleep(Math.max(0, Number(startAt) - Date.now()));
console.log(String(await store.putIfAbsent(key, new TextEncoder().encode(payload))));
