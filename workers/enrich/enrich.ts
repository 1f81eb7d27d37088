import type { TelemetryEnrichment } from "../../lib/events/enrichment.ts";
import type { Envelope } from "../../lib/events/index.ts";
import type { DimsSnapshot } from "./dims-cache.ts";

/** Math.round rounds halves up, as the contract's round(speed / 30) does for positive speeds. */
export const expectedGear = (speed: number) => Math.round(speed / 30);

/**
 * An enriched copy of the envelope. vehicle.telemetry is joined with cars → car_models, car_colors and
 * gets expected_gear; an unknown car is enriched with nulls (`known: false`), never dropped. Other
 * types pass through unchanged.
 */
export function enrich(envelope: Envelope, dims: DimsSnapshot): { envelope: Envelope; knownCar: boolean } {
  if (envelope.type !== "vehicle.telemetry") return { envelope, knownCar: true };
  const carId = envelope.payload.car_id;
  const speed = envelope.payload.speed;
  const car = typeof carId === "number" ? dims.cars.get(carId) : undefined;
  const model = car ? dims.models.get(car.model_id) : undefined;
  const color = car ? dims.colors.get(car.color_id) : undefined;
  const added: TelemetryEnrichment = {
    driver_id: car?.driver_id ?? null,
    model_id: car?.model_id ?? null,
    color_id: car?.color_id ?? null,
    car_brand: model?.car_brand ?? null,
    car_model: model?.car_model ?? null,
    color_name: color?.color_name ?? null,
    expected_gear: expectedGear(typeof speed === "number" ? speed : 0),
  };
  return { envelope: { ...envelope, payload: { ...envelope.payload, ...added } }, knownCar: car !== undefined };
}
