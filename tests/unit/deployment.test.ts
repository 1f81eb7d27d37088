import { expect, test } from "bun:test";
import { z } from "zod";
import { loadConfig } from "../../lib/config.ts";

/** There is no Docker engine here: the compose file is checked by structure, and its app env by our config schema. */
const root = new URL("../../", import.meta.url);
const read = (path: string) => Bun.file(new URL(path, root)).text();

const healthcheck = z.object({ test: z.array(z.string()).min(2), interval: z.string(), retries: z.number().int().positive() });
const service = z.object({
  image: z.string().optional(),
  build: z.string().optional(),
  command: z.union([z.string(), z.array(z.string())]).optional(),
  environment: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
  ports: z.array(z.string()).optional(),
  healthcheck: healthcheck.optional(),
  profiles: z.array(z.string()).optional(),
  depends_on: z.record(z.string(), z.object({ condition: z.enum(["service_healthy", "service_completed_successfully", "service_started"]) })).optional(),
});
const composeSchema = z.object({ services: z.record(z.string(), service), volumes: z.record(z.string(), z.unknown()).optional() });

test("docker-compose.yml runs services mode on official images with health checks and ordered start-up", async () => {
  const compose = composeSchema.parse(Bun.YAML.parse(await read("docker-compose.yml")));
  const { kafka, postgres, minio, gateway, workers } = compose.services;
  expect(kafka?.image).toMatch(/^apache\/kafka:4\.2\./);
  expect(kafka?.environment?.KAFKA_PROCESS_ROLES).toBe("broker,controller");
  expect(postgres?.image).toMatch(/^postgres:15/);
  expect(minio?.image).toMatch(/^minio\/minio:/);
  for (const name of ["kafka", "postgres", "minio", "gateway"]) expect(compose.services[name]?.healthcheck).toBeDefined();
  expect(compose.services["minio-init"]?.depends_on?.minio?.condition).toBe("service_healthy");
  for (const app of [gateway, workers]) {
    expect(app?.build).toBe(".");
    expect(app?.depends_on?.kafka?.condition).toBe("service_healthy");
    expect(app?.depends_on?.postgres?.condition).toBe("service_healthy");
    expect(app?.depends_on?.["minio-init"]?.condition).toBe("service_completed_successfully");
  }
  expect(gateway?.ports).toContain("3000:3000");
  expect(workers?.command).toEqual(["bun", "run", "workers/main.ts", "all"]);
  // No host port for the workers, so `--scale workers=N` works.
  expect(workers?.ports).toBeUndefined();
  // The simulator profile: one service per domain, posting to the gateway once it is healthy.
  const simulators = Object.entries(compose.services).filter(([name]) => name.startsWith("sim-"));
  expect(simulators.map(([name]) => name).sort()).toEqual(["sim-activity", "sim-iot", "sim-location", "sim-smartcity", "sim-vehicle"]);
  for (const [name, sim] of simulators) {
    expect(sim.profiles).toEqual(["simulators"]);
    expect(Array.isArray(sim.command) ? sim.command.slice(0, 4) : sim.command).toEqual(["bun", "run", "generators/cli.ts", name.slice(4)]);
    expect(sim.command).toContain("http://gateway:3000");
    expect(sim.depends_on?.gateway?.condition).toBe("service_healthy");
  }
});

test("the app environment in docker-compose.yml passes the configuration schema in services mode", async () => {
  const compose = composeSchema.parse(Bun.YAML.parse(await read("docker-compose.yml")));
  const env = Object.fromEntries(Object.entries(compose.services.gateway?.environment ?? {}).map(([k, v]) => [k, String(v).replace(/^\$\{[A-Z_]+:-(.*)\}$/, "$1")]));
  const config = loadConfig(env);
  expect(config.mode).toBe("services");
  expect(config.lake).toEqual({ kind: "s3", bucket: "devpipe-lake", prefix: "lake" });
});

test("the Bun version is pinned once in package.json and used the same in .ci/run and the Dockerfile", async () => {
  const pinned = (JSON.parse(await read("package.json")) as { engines: { bun: string } }).engines.bun;
  expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
  expect(await read(".ci/run")).toContain(`BUN_VERSION=${pinned}`);
  expect(await read("Dockerfile")).toContain(`oven/bun:${pinned}`);
  expect(Bun.version).toBe(pinned);
});
