// The committed src/gen/ is what `npm run generate` (buf + protoc-gen-es) makes from proto/ today.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = fileURLToPath(new URL("..", import.meta.url));

function files(dir) {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

test("the generated TypeScript in src/gen is fresh", () => {
  const out = mkdtempSync(join(tmpdir(), "pfc-gen-"));
  try {
    execFileSync(join(pkg, "node_modules/.bin/buf"), ["generate", "--output", out], { cwd: pkg, stdio: "pipe" });
    const fresh = join(out, "src/gen");
    const committed = join(pkg, "src/gen");
    const names = (d) => files(d).map((f) => relative(d, f)).sort();
    assert.deepEqual(names(committed), names(fresh), "run `npm run generate` in sdks/typescript");
    for (const f of names(fresh)) {
      assert.equal(readFileSync(join(committed, f), "utf8"), readFileSync(join(fresh, f), "utf8"), `${f} is stale: run \`npm run generate\` in sdks/typescript`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
