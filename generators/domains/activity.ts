import type { Domain } from "./types.ts";

const PAGES = ["/", "/products", "/products/42", "/products/7", "/cart", "/checkout", "/search", "/account"];

/** User activity: each device is a user going through sessions of page views and clicks. */
export const activity: Domain = {
  name: "activity",
  description: "user.activity sessions (session_start, page_view, click, session_end) from N users",
  create(random, devices) {
    const users = Array.from({ length: devices }, (_, i) => ({ user_id: `user-${i + 1}`, session: 0, remaining: 0 }));
    return {
      dims: {},
      next(device, now) {
        const user = users[device % users.length] ?? users[0];
        if (!user) throw new Error("no users");
        const session_id = `${user.user_id}-s${user.session}`;
        const base = { type: "user.activity", user_id: user.user_id, page: random.pick(PAGES), event_time: now };
        if (user.remaining === 0) {
          user.session++;
          user.remaining = random.int(3, 25);
          return { ...base, session_id: `${user.user_id}-s${user.session}`, action: "session_start", page: "/" };
        }
        user.remaining--;
        if (user.remaining === 0) return { ...base, session_id, action: "session_end" };
        return { ...base, session_id, action: random.chance(0.7) ? "page_view" : "click" };
      },
      corrupt: (event) => ({ ...event, action: "scroll" }),
    };
  },
};
