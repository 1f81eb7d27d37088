import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../lib/config.ts";
import { tempDir } from "../support/tmp.ts";

/**
 * docker-compose.yml checked by Docker Compose v2 itself (the version pinned in scripts/compose.sh, built from
 * source with `go install`): `config` loads the file as `docker compose up` would (YAML, anchors and merges,
 * interpolation, the Compose schema, dependencies between services) without needing a Docker engine. Then the
 * normalized model (`config --format json`) is held against what the app expects: the services and their
 * profiles, the published ports, an environment that passes our configuration schema and points at the other
 * services with their own credentials, health checks behind every `service_healthy`.
 *
 * `bun run test` builds the binary first and exports DEVPIPE_COMPOSE; run alone, this file builds or finds it
 * through scripts/compose.sh (a few minutes the first time, cached in ~/.cache/devpipe after that).
 */

const repo = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const composeFile = join(repo, "docker-compose.yml");
const scratch = tempDir("devpipe-compose-");
/** Compose reads `.env` beside the file: an empty env file instead, so that a developer's `.env` changes nothing here. */
const emptyEnvFile = join(scratch.path, "empty.env");
writeFileSync(emptyEnvFile, "");

let compose = "";

/** The binary from DEVPIPE_COMPOSE, else from scripts/compose.sh (which builds it when missing); never skipped. */
async function composeBinary(): Promise<string> {
  const fromEnv = process.env.DEVPIPE_COMPOSE;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`DEVPIPE_COMPOSE=${fromEnv}: no such file (unset it to build with scripts/compose.sh)`);
    return fromEnv;
  }
  const child = Bun.spawn(["bash", join(repo, "scripts/compose.sh")], { cwd: repo, stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  const [out, exitCode] = await Promise.all([new Response(child.stdout).text(), child.exited]);
  const bin = out.trim().split("\n").pop() ?? "";
  if (exitCode !== 0 || !existsSync(bin)) throw new Error(`scripts/compose.sh failed (exit ${exitCode}): no Docker Compose binary at "${bin}"`);
  return bin;
}

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs Compose on `file` with a clean environment (PATH and HOME, plus `env`). */
function runCompose(file: string, args: string[], env: Record<string, string> = {}): Run {
  const result = Bun.spawnSync([compose, "-f", file, "--env-file", emptyEnvFile, ...args], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  return { exitCode: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
}

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[] | null;
  entrypoint?: string[] | null;
  environment?: Record<string, string | null>;
  ports?: { target: number; published?: string; protocol?: string }[];
  healthcheck?: { test: string[]; interval?: string; timeout?: string; retries?: number };
  depends_on?: Record<string, { condition: string; required: boolean }>;
  profiles?: string[];
  volumes?: { type: string; source: string; target: string }[];
}
interface Model {
  name: string;
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

function model(args: string[], env: Record<string, string> = {}): Model {
  const run = runCompose(composeFile, [...args, "config", "--format", "json"], env);
  if (run.exitCode !== 0) throw new Error(`compose config --format json exited ${run.exitCode}: ${run.stderr}`);
  return JSON.parse(run.stdout) as Model;
}

function service(m: Model, name: string): Service {
  const found = m.services[name];
  if (!found) throw new Error(`no service "${name}" in ${Object.keys(m.services).join(", ")}`);
  return found;
}

const env = (s: Service) => Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, v ?? ""]));
const publishedPorts = (s: Service) => (s.ports ?? []).map((p) => `${p.published}:${p.target}/${p.protocol}`);

const coreServices = ["gateway", "kafka", "minio", "minio-init", "postgres", "workers"];
const simulators = ["sim-activity", "sim-iot", "sim-location", "sim-smartcity", "sim-vehicle"];

beforeAll(async () => {
  compose = await composeBinary();
}, 30 * 60_000);
afterAll(() => scratch.remove());

describe("docker-compose.yml under Docker Compose v2", () => {
  test("the binary is the pinned Compose v2, the one the README names", () => {
    const pinned = /^COMPOSE_VERSION=(v2\.\d+\.\d+)$/m.exec(readFileSync(join(repo, "scripts/compose.sh"), "utf8"))?.[1];
    expect(pinned).toBeDefined();
    const result = Bun.spawnSync([compose, "version", "--short"], { stdout: "pipe", stderr: "pipe" });
    expect(result.exitCode).toBe(0);
    expect(`v${result.stdout.toString().trim()}`).toBe(pinned!);
    // The README and the file's own header say which Compose checks it: the same one.
    expect(readFileSync(join(repo, "README.md"), "utf8")).toContain(`Docker Compose ${pinned}`);
    expect(readFileSync(composeFile, "utf8")).toContain(`Docker Compose ${pinned}`);
  });

  test("`config -q` accepts the file, with and without the simulators profile, without a warning", () => {
    for (const args of [[], ["--profile", "simulators"]]) {
      const run = runCompose(composeFile, [...args, "config", "-q"]);
      expect({ args, ...run }).toEqual({ args, exitCode: 0, stdout: "", stderr: "" });
    }
  });

  test("services and profiles: the simulators only with --profile simulators", () => {
    const plain = model([]);
    expect(plain.name).toBe("devpipe");
    expect(Object.keys(plain.services).sort()).toEqual(coreServices);
    const withSims = model(["--profile", "simulators"]);
    expect(Object.keys(withSims.services).sort()).toEqual([...coreServices, ...simulators].sort());
    for (const name of coreServices) expect(service(withSims, name).profiles).toBeUndefined();
    for (const name of simulators) {
      const sim = service(withSims, name);
      expect(sim.profiles).toEqual(["simulators"]);
      // One simulator per domain, through the generators' CLI, posting to the gateway by its service name.
      expect(sim.command?.slice(0, 4)).toEqual(["bun", "run", "generators/cli.ts", name.slice("sim-".length)]);
      const url = sim.command?.[sim.command.indexOf("--url") + 1];
      expect(url).toBe(`http://gateway:${env(service(withSims, "gateway")).PORT}`);
      // Its key is one of the gateway's keys, with the ingest scope.
      const keys = loadConfig(env(service(withSims, "gateway"))).apiKeys ?? [];
      expect(keys.find((k) => k.key === env(sim).API_KEY)?.scopes).toContain("ingest");
    }
  });

  test("images, builds and published ports", () => {
    const m = model(["--profile", "simulators"]);
    expect(service(m, "kafka").image).toMatch(/^apache\/kafka:4\.2\.\d+$/);
    expect(service(m, "postgres").image).toMatch(/^postgres:15/);
    expect(service(m, "minio").image).toMatch(/^minio\/minio:RELEASE\./);
    expect(service(m, "minio-init").image).toMatch(/^minio\/mc:RELEASE\./);
    for (const name of ["gateway", "workers", ...simulators]) {
      expect(service(m, name).build).toEqual({ context: repo, dockerfile: "Dockerfile" });
      expect(service(m, name).image).toBeUndefined();
    }
    expect(existsSync(join(repo, "Dockerfile"))).toBe(true);
    // The contract's default PORT, published as is; the gateway listens where its PORT says.
    expect(publishedPorts(service(m, "gateway"))).toEqual(["3000:3000/tcp"]);
    expect(env(service(m, "gateway")).PORT).toBe("3000");
    expect(publishedPorts(service(m, "postgres"))).toEqual(["5432:5432/tcp"]);
    expect(publishedPorts(service(m, "minio")).sort()).toEqual(["9000:9000/tcp", "9001:9001/tcp"]);
    // No host port for the workers (so `--scale workers=N` works), the simulators or Kafka.
    for (const name of ["workers", "kafka", "minio-init", ...simulators]) expect(service(m, name).ports).toBeUndefined();
    // Data in named volumes of the project.
    expect(Object.keys(m.volumes ?? {}).sort()).toEqual(["kafka-data", "minio-data", "postgres-data"]);
    expect(service(m, "kafka").volumes?.map((v) => `${v.source}:${v.target}`)).toEqual([`kafka-data:${env(service(m, "kafka")).KAFKA_LOG_DIRS}`]);
  });

  test("the app environment passes our configuration schema and points at the other services with their credentials", () => {
    const m = model([]);
    const kafka = env(service(m, "kafka"));
    const postgres = env(service(m, "postgres"));
    const minio = env(service(m, "minio"));
    for (const name of ["gateway", "workers"]) {
      const appEnv = env(service(m, name));
      const config = loadConfig(appEnv);
      expect(config.mode).toBe("services");
      expect(config.apiKeys).toEqual([{ key: "change-me-admin", scopes: ["ingest", "query", "admin"] }]);
      // Kafka: the broker advertises the address the app dials.
      expect(kafka.KAFKA_ADVERTISED_LISTENERS?.split(",")).toContain(`PLAINTEXT://${appEnv.KAFKA_BROKERS}`);
      // Postgres: the user, password and database the image creates.
      const db = new URL(appEnv.DATABASE_URL!);
      const parts: (string | undefined)[] = [db.hostname, db.port, db.username, db.password, db.pathname];
      expect(parts).toEqual([
        "postgres",
        "5432",
        postgres.POSTGRES_USER,
        postgres.POSTGRES_PASSWORD,
        `/${postgres.POSTGRES_DB}`,
      ]);
      // MinIO: its root credentials, and the bucket minio-init creates.
      expect(appEnv.S3_ENDPOINT).toBe("http://minio:9000");
      const credentials: (string | undefined)[] = [appEnv.AWS_ACCESS_KEY_ID, appEnv.AWS_SECRET_ACCESS_KEY];
      expect(credentials).toEqual([minio.MINIO_ROOT_USER, minio.MINIO_ROOT_PASSWORD]);
      expect(config.lake).toEqual({ kind: "s3", bucket: "devpipe-lake", prefix: "lake" });
      expect(service(m, "minio-init").entrypoint?.join(" ")).toContain(`mc mb --ignore-existing lake/${config.lake.kind === "s3" ? config.lake.bucket : ""}`);
      expect(service(m, "minio-init").entrypoint?.join(" ")).toContain(`http://minio:9000 ${minio.MINIO_ROOT_USER} ${minio.MINIO_ROOT_PASSWORD}`);
    }
    expect(service(m, "workers").command).toEqual(["bun", "run", "workers/main.ts", "all"]);
    expect(service(m, "gateway").command).toEqual(["bun", "run", "api/main.ts"]);
  });

  test("API_KEYS and SIMULATOR_KEY from the caller's environment are interpolated", () => {
    const m = model(["--profile", "simulators"], { API_KEYS: "k1:ingest+query+admin,dev42:ingest", SIMULATOR_KEY: "dev42" });
    for (const name of ["gateway", "workers"]) expect(env(service(m, name)).API_KEYS).toBe("k1:ingest+query+admin,dev42:ingest");
    for (const name of simulators) expect(env(service(m, name)).API_KEY).toBe("dev42");
  });

  test("start-up order: health checks behind every service_healthy, the bucket before the apps", () => {
    const m = model(["--profile", "simulators"]);
    const conditions = Object.fromEntries(
      Object.entries(m.services).map(([name, s]) => [name, Object.fromEntries(Object.entries(s.depends_on ?? {}).map(([dep, d]) => [dep, d.condition]))]),
    );
    const app = { kafka: "service_healthy", postgres: "service_healthy", "minio-init": "service_completed_successfully" };
    expect(conditions).toEqual({
      kafka: {},
      postgres: {},
      minio: {},
      "minio-init": { minio: "service_healthy" },
      gateway: app,
      workers: { ...app, gateway: "service_healthy" },
      ...Object.fromEntries(simulators.map((name) => [name, { gateway: "service_healthy" }])),
    });
    // Compose accepts service_healthy on a service without a health check, and `up` then fails: check it here.
    for (const [name, deps] of Object.entries(conditions)) {
      for (const [dep, condition] of Object.entries(deps)) {
        if (condition !== "service_healthy") continue;
        const check = service(m, dep).healthcheck;
        expect({ service: name, dependsOn: dep, test: check?.test?.[0] }).toEqual({ service: name, dependsOn: dep, test: expect.stringMatching(/^CMD(-SHELL)?$/) });
        expect(check?.retries).toBeGreaterThan(0);
      }
    }
    // What the checks probe: Kafka's API on its listener, Postgres's database, MinIO, the gateway's /readyz on its PORT.
    expect(service(m, "kafka").healthcheck?.test.join(" ")).toContain("--bootstrap-server localhost:9092");
    expect(service(m, "postgres").healthcheck?.test.join(" ")).toContain("pg_isready -U devpipe -d devpipe");
    expect(service(m, "minio").healthcheck?.test).toEqual(["CMD", "mc", "ready", "local"]);
    expect(service(m, "gateway").healthcheck?.test.join(" ")).toContain(`http://localhost:${env(service(m, "gateway")).PORT}/readyz`);
  });

  test("a broken copy of the file is rejected (non-zero exit, the problem named), an intact copy accepted", () => {
    const original = readFileSync(composeFile, "utf8");
    const copy = (name: string, text: string) => {
      const path = join(scratch.path, name);
      writeFileSync(path, text);
      return path;
    };
    const intact = runCompose(copy("intact.yml", original), ["--profile", "simulators", "config", "-q"]);
    expect(intact).toEqual({ exitCode: 0, stdout: "", stderr: "" });

    const breakages: { name: string; from: string | RegExp; to: string; message: RegExp }[] = [
      { name: "unknown-condition", from: "condition: service_completed_successfully", to: "condition: service_done", message: /condition must be one of the following/ },
      { name: "undefined-dependency", from: /^ {6}minio-init:$/m, to: "      minio-setup:", message: /depends on undefined service "minio-setup"/ },
      { name: "misspelt-key", from: /^ {4}healthcheck:$/m, to: "    healthchek:", message: /Additional property healthchek is not allowed/ },
      { name: "retries-not-a-number", from: "retries: 20", to: "retries: twenty", message: /retries/ },
      { name: "bad-port", from: '"3000:3000"', to: '"3000:3000:3000:x"', message: /invalid IP address/ },
    ];
    for (const { name, from, to, message } of breakages) {
      const broken = original.replace(from, to);
      expect(broken).not.toBe(original);
      const run = runCompose(copy(`${name}.yml`, broken), ["--profile", "simulators", "config", "-q"]);
      expect({ name, failed: run.exitCode !== 0 }).toEqual({ name, failed: true });
      expect(run.stderr).toMatch(message);
    }
  });
});
