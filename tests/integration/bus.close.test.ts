import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
import { services, uniqueName } from "../support/services.ts";
import { tempDir } from "../support/tmp.ts";

/**
 * After close() a process must be able to exit by itself: nothing left connected or scheduled.
 * Concurrent first produces once each opened their own Kafka producer, and the leak kept the process alive.
 */
const script = (openBus: string) => `
  import { createLogger } from "${join(import.meta.dir, "../../lib/log.ts")}";
  ${openBus}
  const topic = ${JSON.stringify(uniqueName("close"))};
  await bus.ensureTopics([{ name: topic, partitions: 2 }]);
  await Promise.all(Array.from({ length: 16 }, (_, i) => bus.produce(topic, [{ key: "k" + i, value: new Uint8Array(8) }])));
  const consumer = await bus.consume({ group: topic, topics: [topic], onBatch: async () => undefined });
  await consumer.stop();
  await bus.close();
  console.log("closed");
`;

const scratch = tempDir("devpipe-close-");
afterAll(() => scratch.remove());
const variants = {
  embedded: `import { createEmbeddedBus } from "${join(import.meta.dir, "../../lib/bus/embedded/index.ts")}";
    const bus = await createEmbeddedBus({ dir: ${JSON.stringify(scratch.path)}, logger: createLogger({}, () => undefined) });`,
  kafka: `import { createKafkaBus } from "${join(import.meta.dir, "../../lib/bus/kafka.ts")}";
    const bus = createKafkaBus({ brokers: ${JSON.stringify(services().kafkaBrokers)}, logger: createLogger({}, () => undefined) });`,
};

for (const [name, openBus] of Object.entries(variants)) {
  test(`${name}: a process exits on its own after close(), even after concurrent first produces`, async () => {
    const child = Bun.spawn(["bun", "-e", script(openBus)], { stdout: "pipe", stderr: "pipe" });
    const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const code = await child.exited;
    clearTimeout(killer);
    expect(await new Response(child.stdout).text()).toContain("closed");
    expect(code).toBe(0);
  }, 30_000);
}
