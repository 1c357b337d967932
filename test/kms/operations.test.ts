// The wire and the operations agree: every operation whose input the endpoint checks has a
// handler, and every handler's operation is accepted on the wire (none unreachable, none a 500).
import { describe, expect, it } from "vitest";

import { SERVED_OPERATIONS } from "../../src/kms/service.js";
import { OPERATIONS } from "../../src/kms/shapes.js";

describe("the operations table", () => {
  it("has a handler for each operation the wire accepts, and no other", () => {
    expect([...SERVED_OPERATIONS].sort()).toEqual([...OPERATIONS].sort());
  });
});
