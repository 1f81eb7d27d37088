import { z } from "zod";
import { defineEventType, text } from "./define.ts";

export const userActivity = defineEventType({
  type: "user.activity",
  description: "A user's action on a site: page views per minute, active users and session durations come from these.",
  keyField: "user_id",
  fields: {
    user_id: text("User id"),
    session_id: text("Session id"),
    action: z.enum(["page_view", "click", "session_start", "session_end"]).describe("`page_view`, `click`, `session_start` or `session_end`"),
    page: text("Page path, e.g. /products/42"),
  },
  example: { user_id: "user-314", session_id: "sess-9f2c", action: "page_view", page: "/products/42", event_time: "2026-11-21T10:15:30Z" },
});
