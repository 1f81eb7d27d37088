/**
 * The alert rules of the contract, as data: adding a rule is one entry here. Each applies to one event
 * type and reads the enriched payload.
 */
export interface AlertRule {
  name: string;
  type: string;
  description: string;
  matches(payload: Record<string, unknown>): boolean;
}

const num = (value: unknown) => (typeof value === "number" ? value : Number.NaN);

export const alertRules: readonly AlertRule[] = [
  { name: "speeding", type: "vehicle.telemetry", description: "speed > 120 km/h", matches: (p) => num(p.speed) > 120 },
  { name: "gear_mismatch", type: "vehicle.telemetry", description: "expected_gear (round(speed / 30)) ≠ gear", matches: (p) => num(p.expected_gear) !== num(p.gear) },
  { name: "high_rpm", type: "vehicle.telemetry", description: "rpm > 6000", matches: (p) => num(p.rpm) > 6000 },
];

export const alertRuleNames = alertRules.map((r) => r.name);

/** Names of the rules an event matches, in rule order; empty when none. */
export function matchingRules(type: string, payload: Record<string, unknown>): string[] {
  return alertRules.filter((r) => r.type === type && r.matches(payload)).map((r) => r.name);
}
