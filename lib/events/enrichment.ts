import { z } from "zod";

const nullableId = (description: string) => z.number().int().nullable().describe(description);
const nullableName = (description: string) => z.string().nullable().describe(description);

/** The fields enrichment adds to vehicle.telemetry (null when the car or its model/colour is unknown). */
export const TelemetryEnrichmentSchema = z.object({
  driver_id: nullableId("Driver of the car (cars)"),
  model_id: nullableId("Model id (cars)"),
  color_id: nullableId("Colour id (cars)"),
  car_brand: nullableName("Brand (car_models)"),
  car_model: nullableName("Model (car_models)"),
  color_name: nullableName("Colour (car_colors)"),
  expected_gear: z.number().int().describe("round(speed / 30)"),
});
export type TelemetryEnrichment = z.infer<typeof TelemetryEnrichmentSchema>;

/** Fields the enrich job adds, by event type; types not listed pass through unchanged. */
export const enrichedFields: Readonly<Record<string, z.ZodRawShape>> = {
  "vehicle.telemetry": TelemetryEnrichmentSchema.shape,
};
