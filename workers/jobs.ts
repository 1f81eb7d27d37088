import type { Services } from "../lib/services.ts";

/** A stream job the runner can host: it starts consuming and resolves a function that stops it. */
export interface Job {
  name: string;
  description: string;
  start(services: Services): Promise<() => Promise<void>>;
}

/** Every job, by name. A job is added here and nowhere else. */
export const jobs: Record<string, Job> = {};
