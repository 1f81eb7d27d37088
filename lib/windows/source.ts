/** Header naming the events.raw partition and offset an enriched record was made from ("3:1042"). */
export const SOURCE_HEADER = "devpipe-source";

export function parseSource(value: string | undefined): { partition: number; offset: number } | undefined {
  const match = /^(\d+):(\d+)$/.exec(value ?? "");
  return match ? { partition: Number(match[1]), offset: Number(match[2]) } : undefined;
}
