// The gateway names these schemas with `.openapi()`, which only schemas built after @hono/zod-openapi has
// extended zod carry: loading it first keeps that true whichever module (a worker, a test) imports this one first.
import "@hono/zod-openapi";
import { z } from "zod";
import { bigintId, integerId, storableText } from "./events/storable.ts";

/**
 * The reference data of the contract: each dimension's row schema and primary key. The gateway
 * validates and stores them; the enrich job reads them.
 */
// Each id is bounded by its column in sql/002_dims.sql: model_id and color_id are `integer` everywhere,
// car_id and driver_id are `bigint`.
const name = (description: string) => storableText(z.string().min(1).max(256)).describe(description);

export const CarModelSchema = z.strictObject({ model_id: integerId("Model id"), car_brand: name("Brand, e.g. Toyota"), car_model: name("Model, e.g. Corolla") });
export const CarColorSchema = z.strictObject({ color_id: integerId("Colour id"), color_name: name("Colour, e.g. Black, White, Silver") });
export const CarSchema = z.strictObject({
  car_id: bigintId("Car id, as sent in vehicle.telemetry"),
  driver_id: bigintId("Driver id"),
  model_id: integerId("Model id (car_models)"),
  color_id: integerId("Colour id (car_colors)"),
});

export type CarModel = z.infer<typeof CarModelSchema>;
export type CarColor = z.infer<typeof CarColorSchema>;
export type Car = z.infer<typeof CarSchema>;

export const dimensions = {
  car_models: { schema: CarModelSchema, key: "model_id", columns: ["model_id", "car_brand", "car_model"] },
  car_colors: { schema: CarColorSchema, key: "color_id", columns: ["color_id", "color_name"] },
  cars: { schema: CarSchema, key: "car_id", columns: ["car_id", "driver_id", "model_id", "color_id"] },
} as const;

export type DimensionName = keyof typeof dimensions;
export const dimensionNames = Object.keys(dimensions) as DimensionName[];

export function isDimensionName(value: string): value is DimensionName {
  return Object.hasOwn(dimensions, value);
}
