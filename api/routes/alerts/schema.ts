import { z } from "@hono/zod-openapi";
import { alertRuleNames } from "../../../lib/alert-rules.ts";
import { CursorParamSchema, LimitParamSchema, textParamSchema, timeParamSchema } from "../../query-params.ts";

export const AlertItemSchema = z
  .object({
    alert_id: z.string().openapi({ example: "3f1c9a52-7d2e-8b4f-9a61-0c5d2e7f8a13" }),
    event_id: z.string().openapi({ example: "0193a5c2-7f3e-7b4a-9c1d-2e5f6a7b8c9d" }),
    type: z.string().openapi({ example: "vehicle.telemetry" }),
    key: z.string().openapi({ description: "The device key (car_id for telemetry)", example: "42" }),
    event_time: z.string().openapi({ example: "2026-11-21T10:15:30.250Z" }),
    rules: z.array(z.enum(alertRuleNames as [string, ...string[]])).openapi({ example: ["speeding", "high_rpm"] }),
    event: z.record(z.string(), z.unknown()).openapi({ description: "The enriched event's fields", example: { car_id: 42, speed: 128.5, rpm: 6400, gear: 4, driver_id: 1007, model_id: 3, color_id: 1, car_brand: "Ford", car_model: "Focus", color_name: "Black", expected_gear: 4 } }),
  })
  .openapi("Alert");

export const AlertListSchema = z
  .object({ items: z.array(AlertItemSchema), next_cursor: z.string().nullable().openapi({ description: "Pass as `cursor` for the next page; null at the end" }) })
  .openapi("AlertList");

export const AlertListQuery = z.object({
  from: timeParamSchema("Start of [from, to) on event_time"),
  to: timeParamSchema("End of [from, to) on event_time"),
  key: textParamSchema("Device key", "42"),
  rule: z.enum(alertRuleNames as [string, ...string[]]).optional(),
  limit: LimitParamSchema,
  cursor: CursorParamSchema,
});
