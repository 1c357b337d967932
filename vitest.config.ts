import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    pool: "forks",
    // Two files at a time on the 2-core CI machine (vitest's default there is one): most files wait
    // on processes, sockets and restarts rather than compute; the suite took 9.5 min one at a time, 5.5 two at a time.
    maxWorkers: 2,
    // The AWS SDK's one-line notice that its 2027 releases need Node 22 (the lockfile pins one that runs on 20).
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
  },
});
