import { z } from "@hono/zod-openapi";
import { CarColorSchema, CarModelSchema, CarSchema, type DimensionName, dimensionNames } from "../../../lib/dims.ts";

/** Each dimension's row, as the OpenAPI document names it. */
export const documentedRowSchemas = {
  car_models: CarModelSchema.openapi("CarModel"),
  car_colors: CarColorSchema.openapi("CarColor"),
  cars: CarSchema.openapi("Car"),
} as const satisfies Record<DimensionName, z.ZodType>;

export const DimensionVersionSchema = z
  .object({
    name: z.enum(dimensionNames),
    version: z.number().int().openapi({ description: "Increases by one with each replacement", example: 3 }),
    rows: z.number().int().openapi({ example: 500 }),
    updated_at: z.string().openapi({ example: "2026-11-21T10:15:30.000Z" }),
  })
  .openapi("DimensionVersion");

export const DimensionSchema = DimensionVersionSchema.extend({ items: z.array(z.record(z.string(), z.unknown())) }).openapi("Dimension");

/** One dimension's GET body, with its own row schema, for the document. */
export const documentedDimensionSchema = (name: DimensionName) => DimensionVersionSchema.extend({ name: z.literal(name), items: z.array(documentedRowSchemas[name]) });
