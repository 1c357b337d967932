// An application must reach nothing but its PKCS#11 profile (issue 8): walk everything reachable
// from a `PKCS11` the way an attacker's code could (own and inherited properties, enumerable or
// not, symbols, getters, Map and Set contents, functions' own properties) and look for the
// device's capabilities, the Hsm, its store and its chip.
import { afterEach, describe, expect, it } from "vitest";

import { internalsOf } from "../../src/hsm/internals.js";
import { type Device, H, activatedDevice, cuSession, tokenAesKey } from "../hsm/fixture.js";
import { findForbidden as walk } from "./walk.js";

const FORBIDDEN_NAMES: ReadonlySet<string> = new Set([
  "loginPrincipal", "shareObject", "exportMaskingKeyFor", "saveMaskingKey", "loadMaskingKey", "exportMasked", "importMasked",
  "removeObject", "setTrusted", "openApplication", "importMaskingKey", "shareMaskingKey", "ownership", "revokePrincipal",
]);

const findForbidden = (root: unknown, forbiddenObjects: Map<unknown, string>) => walk(root, forbiddenObjects, FORBIDDEN_NAMES);


let device: Device | undefined;
afterEach(() => {
  device?.cleanup();
  device = undefined;
});

describe("nothing but PKCS#11 is reachable from an application", () => {
  it("a PKCS11 of hsm.pkcs11(), logged in and used, reaches no device capability, the Hsm, its store or its chip", () => {
    device = activatedDevice();
    const { hsm } = device;
    const { pkcs11, session } = cuSession(hsm, "alice", "alice-password");
    tokenAesKey(pkcs11, session, "used");
    const internals = internalsOf(hsm);
    const forbidden = new Map<unknown, string>([
      [hsm, "the Hsm"], [internals, "the Hsm's internals"], [internals.chip, "the chip"], [internals.store, "the store"],
      [internals.state, "the device state"], [device.co, "a CO actor"],
    ]);
    expect(findForbidden(pkcs11, forbidden)).toEqual([]);
  });

  it("a PKCS11 of load('memory:') reaches no device capability of its chip", () => {
    const pkcs11 = H.load("memory:?pinHashIterations=16");
    pkcs11.C_Initialize();
    H.openUserSession(pkcs11, { soPin: "so-secret-1", userPin: "user-secret-1" });
    expect(findForbidden(pkcs11, new Map())).toEqual([]);
  });

  it("the walk finds a device capability where one is reachable (the walker is not blind)", () => {
    const chip = H.createChip({ pinHashIterations: 1 });
    const leaky = { backend: chip }; // what PKCS11 held before: its backend as a property
    expect(findForbidden(leaky, new Map([[chip, "the chip"]]))).toEqual(expect.arrayContaining([
      expect.stringContaining("the chip"), expect.stringContaining("loginPrincipal"), expect.stringContaining("exportMaskingKeyFor"),
    ]));
    // Hidden behind a Map, a non-enumerable property and a getter: still found.
    const hidden = Object.defineProperty({}, "x", { enumerable: false, get: () => new Map([[1, { deep: chip }]]) });
    expect(findForbidden(hidden, new Map([[chip, "the chip"]]))).toEqual(expect.arrayContaining([expect.stringContaining("the chip")]));
  });

  it("an application object is frozen and holds the PKCS#11 calls only", () => {
    const chip = H.createChip({ pinHashIterations: 1 });
    const app = chip.openApplication();
    expect(Object.isFrozen(app)).toBe(true);
    expect(Reflect.ownKeys(app).filter((k) => FORBIDDEN_NAMES.has(String(k)))).toEqual([]);
    expect(() => Object.defineProperty(app, "loginPrincipal", { value: chip.loginPrincipal })).toThrow(TypeError);
  });
});
