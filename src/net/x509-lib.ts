// @peculiar/x509, loaded with the temporary Reflect shim around it (see reflect-shim.ts).
// Import order matters: the shim module is evaluated before x509, the removal after.
import { removeReflectShim } from "./reflect-shim.js";
import * as x509 from "@peculiar/x509";

removeReflectShim();

export { x509 };
