import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../env.ts";

const DASHBOARD_DIR = new URL("../../dashboard/", import.meta.url).pathname;

interface Bundle {
  js: string;
  css: string;
}

/** The dashboard's script and styles, uPlot included, bundled by Bun's bundler (no CDN), once per process. */
let bundling: Promise<Bundle> | undefined;
export function dashboardBundle(): Promise<Bundle> {
  bundling ??= (async () => {
    const result = await Bun.build({ entrypoints: [`${DASHBOARD_DIR}app.ts`], target: "browser", minify: true });
    if (!result.success) throw new AggregateError(result.logs, "dashboard bundle failed");
    const text = async (kind: "js" | "css") => (await Promise.all(result.outputs.filter((o) => o.path.endsWith(`.${kind}`)).map((o) => o.text()))).join("\n");
    return { js: await text("js"), css: await text("css") };
  })().catch((error: unknown) => {
    bundling = undefined;
    throw error;
  });
  return bundling;
}

/** GET / (the live dashboard) and its assets. The page asks for an API key and calls the public API. */
export function registerDashboard(app: OpenAPIHono<AppEnv>) {
  const html = Bun.file(`${DASHBOARD_DIR}index.html`);
  const cache = { "cache-control": "no-cache" };
  app.get("/", async (c) => c.html(await html.text(), 200, cache));
  app.get("/dashboard/app.js", async (c) => c.body((await dashboardBundle()).js, 200, { ...cache, "content-type": "text/javascript; charset=utf-8" }));
  app.get("/dashboard/app.css", async (c) => c.body((await dashboardBundle()).css, 200, { ...cache, "content-type": "text/css; charset=utf-8" }));
}
