// The remote client: connect() and the `cloudhsm:` load target. Importing this module
// registers the target scheme with the PKCS11 facade (the facade's layer knows no client).
import { registerTargetScheme } from "../../pkcs11/target.js";
import { RemoteLink } from "./link.js";
import { parseCloudHsmTarget } from "./target.js";

export { connect, type ConnectOptions, RemoteConnection } from "./connect.js";
export { type CloudHsmTarget, DEFAULT_HSM_PORT, parseCloudHsmTarget } from "./target.js";

registerTargetScheme("cloudhsm:", (target) => {
  const { callTimeoutMs, ...cluster } = parseCloudHsmTarget(target);
  return new RemoteLink({ kind: "cluster", ...cluster }, { callTimeoutMs }).chip();
});
