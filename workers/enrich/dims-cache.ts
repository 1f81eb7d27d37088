import type { Car, CarColor, CarModel } from "../../lib/dims.ts";
import type { Sql } from "../../lib/db/index.ts";
import type { Logger } from "../../lib/log.ts";
import { dimensionVersions } from "../../lib/store/dims.ts";

export interface DimsSnapshot {
  cars: Map<number, Car>;
  models: Map<number, CarModel>;
  colors: Map<number, CarColor>;
}

/**
 * The dimensions in memory for joins. A timer compares the versions in dims_versions (one small query)
 * and reloads the tables that changed, so a PUT /v1/dims is seen within `refreshMs` without a restart.
 */
export async function createDimsCache(sql: Sql, logger: Logger, refreshMs = 2_000) {
  let snapshot: DimsSnapshot = { cars: new Map(), models: new Map(), colors: new Map() };
  let versions = new Map<string, number>();

  const refresh = async () => {
    const current = await dimensionVersions(sql);
    if ([...current].every(([name, version]) => versions.get(name) === version) && current.size === versions.size) return;
    const [cars, models, colors] = await Promise.all([
      sql<Car[]>`select car_id, driver_id, model_id, color_id from cars`,
      sql<CarModel[]>`select model_id, car_brand, car_model from car_models`,
      sql<CarColor[]>`select color_id, color_name from car_colors`,
    ]);
    snapshot = { cars: new Map(cars.map((c) => [c.car_id, c])), models: new Map(models.map((m) => [m.model_id, m])), colors: new Map(colors.map((c) => [c.color_id, c])) };
    versions = current;
    logger.info("dimensions loaded", { cars: cars.length, car_models: models.length, car_colors: colors.length, versions: Object.fromEntries(current) });
  };

  await refresh();
  const timer = setInterval(() => refresh().catch((error: unknown) => logger.warn("dimension refresh failed; keeping the previous ones", { error })), refreshMs);
  return {
    current: () => snapshot,
    refresh,
    close: () => clearInterval(timer),
  };
}

export type DimsCache = Awaited<ReturnType<typeof createDimsCache>>;
