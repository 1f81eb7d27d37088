import { z } from "@hono/zod-openapi";
import { CarColorSchema, CarModelSchema, CarSchema, dimensionNames } from "../../../lib/dims.ts";

export const DimensionNameParam = z.object({
  name: z.enum(dimensionNames).openapi({ param: { name: "name", in: "path" }, example: "cars" }),
});

export const DimensionRowsSchema = z
  .union([z.array(CarModelSchema.openapi("CarModel")), z.array(CarColorSchema.openapi("CarColor")), z.array(CarSchema.openapi("Car"))])
  .openapi("DimensionRows", { example: [{ car_id: 42, driver_id: 1007, model_id: 3, color_id: 1 }] });

export const DimensionVersionSchema = z
  .object({
    name: z.enum(dimensionNames),
    version: z.number().int().openapi({ description: "Increases by one with each replacement", example: 3 }),
    rows: z.number().int().openapi({ example: 500 }),
    updated_at: z.string().openapi({ example: "2026-11-21T10:15:30.000Z" }),
  })
  .openapi("DimensionVersion");

export const DimensionSchema = DimensionVersionSchema.extend({ items: z.array(z.record(z.string(), z.unknown())) }).openapi("Dimension");
