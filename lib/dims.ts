import { z } from "zod";

/**
 * The reference data of the contract: each dimension's row schema and primary key. The gateway
 * validates and stores them; the enrich job reads them.
 */
const id = (description: string) => z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).describe(description);
const name = (description: string) => z.string().min(1).max(256).describe(description);

export const CarModelSchema = z.strictObject({ model_id: id("Model id"), car_brand: name("Brand, e.g. Toyota"), car_model: name("Model, e.g. Corolla") });
export const CarColorSchema = z.strictObject({ color_id: id("Colour id"), color_name: name("Colour, e.g. Black, White, Silver") });
export const CarSchema = z.strictObject({ car_id: id("Car id, as sent in vehicle.telemetry"), driver_id: id("Driver id"), model_id: id("Model id (car_models)"), color_id: id("Colour id (car_colors)") });

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
