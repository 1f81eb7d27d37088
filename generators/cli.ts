/**
 * `bun run simulate <domain> [options]`: device simulators that POST to the gateway like real devices.
 * The registry below lists the simulators this build has.
 */
export const simulators: Record<string, { description: string; run(argv: string[]): Promise<void> }> = {};

if (import.meta.main) {
  const [domain, ...rest] = process.argv.slice(2);
  const simulator = domain ? simulators[domain] : undefined;
  if (!simulator) {
    const known = Object.keys(simulators);
    process.stderr.write(`usage: bun run simulate <domain> [options]\n${domain ? `unknown domain "${domain}". ` : ""}domains: ${known.length > 0 ? known.join(", ") : "(none registered in this build)"}\n`);
    process.exit(2);
  }
  await simulator.run(rest);
}
