import { timingSafeEqual } from "node:crypto";
import type { Scope } from "../../lib/config.ts";

export interface ApiKey {
  key: string;
  scopes: Scope[];
}

const digest = (value: string) => new Bun.CryptoHasher("sha256").update(value).digest();

/**
 * Looks a presented key up in constant time: both sides are hashed to 32 bytes (so lengths leak
 * nothing) and compared with timingSafeEqual against every key, without stopping at a match. A key
 * that matched is remembered (at most one entry per configured key), so the devices that send one
 * event per request do not pay for a SHA-256 each time; what that lookup's timing could tell is
 * only whether the presented string is exactly a valid key, which the answer says anyway.
 */
export function createKeyring(keys: ApiKey[]) {
  const entries = keys.map((k) => ({ hash: digest(k.key), scopes: k.scopes }));
  const known = new Map<string, Scope[]>();
  return {
    scopesOf(presented: string): Scope[] | undefined {
      const remembered = known.get(presented);
      if (remembered) return remembered;
      const hash = digest(presented);
      let found: Scope[] | undefined;
      for (const entry of entries) if (timingSafeEqual(entry.hash, hash)) found = entry.scopes;
      if (found && known.size < entries.length) known.set(presented, found);
      return found;
    },
  };
}

export type Keyring = ReturnType<typeof createKeyring>;
