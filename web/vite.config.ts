// Builds the web app into dist/ for droverd's --web-root. Everything is bundled: the page
// loads nothing from another origin and runs no inline script (droverd sends
// Content-Security-Policy: default-src 'self').
import { defineConfig } from "vitest/config";

export default defineConfig({
  base: "/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    // The polyfill would be a separate script anyway; every browser we target has it.
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 400,
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
