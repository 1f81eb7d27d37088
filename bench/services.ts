import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";

/** Connection settings of the services `bash scripts/services.sh up` started (its services.env). */
export function serviceEnv(): Record<string, string> {
  const file = join(process.env.DEVPIPE_SERVICES_DIR ?? "/tmp/devpipe-services", "services.env");
  if (!existsSync(file)) throw new Error("no services: run `bash scripts/services.sh up` first");
  return Object.fromEntries(readFileSync(file, "utf8").split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
}

/** A database of its own for one benchmark run on the real Postgres; `drop()` removes it. */
export async function benchDatabase(prefix: string) {
  const env = serviceEnv();
  const name = `${prefix}_${Date.now().toString(36)}`;
  const admin = postgres(env.DATABASE_URL ?? "", { max: 1, onnotice: () => undefined });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(env.DATABASE_URL ?? "");
  url.pathname = `/${name}`;
  return {
    name,
    env,
    url: url.toString(),
    async drop() {
      await admin.unsafe(`drop database ${name} with (force)`);
      await admin.end();
    },
  };
}
