/** `bun run bench`: every benchmark in bench/, each printing JSON lines. */
const benches = ["bus.ts", "ingest.ts", "pipeline.ts", "lake.ts", "delta-log.ts", "sse.ts"];
for (const file of benches) {
  const child = Bun.spawn(["bun", "run", new URL(file, import.meta.url).pathname], { stdout: "inherit", stderr: "inherit", env: process.env });
  if ((await child.exited) !== 0) process.exit(1);
}
