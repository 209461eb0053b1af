// Builds the UI into dist/ (embedded in the `pfc` binary) and copies Swagger UI's two files
// from the swagger-ui-dist npm package next to public/docs/index.html, so /docs works offline.
import { defineConfig, type Plugin } from "vite";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);

function swaggerUi(): Plugin {
  return {
    name: "pfc-swagger-ui",
    apply: "build",
    generateBundle() {
      const dir = dirname(require.resolve("swagger-ui-dist/package.json"));
      for (const file of ["swagger-ui-bundle.js", "swagger-ui.css"]) {
        this.emitFile({ type: "asset", fileName: `docs/${file}`, source: readFileSync(join(dir, file)) });
      }
    },
  };
}

// `npm run dev` proxies API and gRPC-web calls to a running `pfc dev` (PFC_URL, default :8000).
const target = process.env.PFC_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [swaggerUi()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 600 },
  server: {
    proxy: {
      "^/(api|jobs|healthz|readyz|metrics|openapi\\.json|pfc\\.)": { target, changeOrigin: true },
    },
  },
});
