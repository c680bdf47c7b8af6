// Bundle the two pages with esbuild: `node build.mjs <out dir>` writes legacy.html, thread.html.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";

const out = process.argv[2];
const pages = { legacy: "pages/legacy.jsx", thread: "pages/thread.jsx" };
await build({
  entryPoints: pages,
  bundle: true,
  outdir: out,
  format: "esm",
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning",
});
for (const name of Object.keys(pages)) {
  writeFileSync(
    join(out, `${name}.html`),
    `<!doctype html><html><head><meta charset="utf-8"><title>${name}</title></head>` +
      `<body><div id="root"></div><script type="module" src="./${name}.js"></script></body></html>\n`,
  );
}
process.stdout.write(JSON.stringify({ built: Object.keys(pages) }) + "\n");
