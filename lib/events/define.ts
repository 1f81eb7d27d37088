import { z } from "zod";
import { storableText } from "./storable.ts";

/**
 * An event type of the public contract: its own fields (beyond `type`, `event_id`, `event_time`),
 * the field that keys the device, a description and an example for the OpenAPI document.
 */
export interface EventTypeSpec<Fields extends z.ZodRawShape> {
  type: string;
  description: string;
  fields: Fields;
  keyField: keyof Fields & string;
  example: z.input<z.ZodObject<Fields>> & { event_time: string | number };
}

export interface TypedEventType<Fields extends z.ZodRawShape> extends EventTypeSpec<Fields> {
  /** The type's own fields, strict: unknown fields are errors. */
  payload: z.ZodObject<Fields, z.core.$strict>;
}

/** Any event type, as the registry holds it. */
export interface EventType {
  type: string;
  description: string;
  keyField: string;
  fields: z.ZodRawShape;
  payload: z.ZodType<Record<string, unknown>>;
  example: Record<string, unknown>;
}

export function defineEventType<Fields extends z.ZodRawShape>(spec: EventTypeSpec<Fields>): TypedEventType<Fields> {
  return { ...spec, payload: z.strictObject(spec.fields) };
}

// ---- field kinds shared by the types
export const MAX_TEXT = 256;

/** Non-empty text of at most `max` characters that every sink can store (no U+0000, no unpaired surrogate). */
export const text = (description: string, max = MAX_TEXT) => storableText(z.string().min(1).max(max)).describe(description);
export const latitude = z.number().min(-90).max(90).describe("Latitude, degrees (WGS 84), −90 to 90");
export const longitude = z.number().min(-180).max(180).describe("Longitude, degrees (WGS 84), −180 to 180");
export const nonNegative = (description: string) => z.number().min(0).describe(description);
