// A reachability walker for the isolation tests: what can code holding `root` get to at run time?
/**
 * Every path (as text) from `root` to a forbidden object or a property or function of a forbidden
 * name, walked the way an attacker's code could: own and inherited properties, enumerable or not,
 * symbols, getters (run on the receiver they would be), Map and Set contents, functions' properties.
 */
export function findForbidden(root: unknown, forbiddenObjects: Map<unknown, string>, forbiddenNames: ReadonlySet<string> = new Set()): string[] {
  const found: string[] = [];
  const seen = new Set<unknown>();
  // Each object with the receiver its getters run on: an inherited getter runs on the instance.
  const queue: [unknown, string, unknown][] = [[root, "root", root]];
  const push = (value: unknown, path: string, receiver: unknown = value) => {
    if ((typeof value === "object" && value !== null) || typeof value === "function") queue.push([value, path, receiver]);
  };
  while (queue.length > 0) {
    const [value, path, receiver] = queue.shift()!;
    if (seen.has(value)) continue;
    seen.add(value);
    const label = forbiddenObjects.get(value);
    if (label !== undefined) found.push(`${path} is ${label}`);
    if (typeof value === "function" && forbiddenNames.has(value.name)) found.push(`${path} is the function ${value.name}`);
    const target = value as object;
    push(Object.getPrototypeOf(target), `${path}.__proto__`, receiver);
    if (value instanceof Map) for (const [k, v] of value) { push(k, `${path}<key>`); push(v, `${path}<value>`); }
    if (value instanceof Set) for (const v of value) push(v, `${path}<item>`);
    // A typed array's indices are bytes, not references.
    const keys = ArrayBuffer.isView(value) ? [] : Reflect.ownKeys(target);
    for (const key of keys) {
      const name = String(key);
      if (forbiddenNames.has(name)) found.push(`${path}.${name}`);
      const descriptor = Reflect.getOwnPropertyDescriptor(target, key);
      if (!descriptor) continue;
      if ("value" in descriptor) push(descriptor.value, `${path}.${name}`);
      for (const accessor of [descriptor.get, descriptor.set]) push(accessor, `${path}.${name}<accessor>`);
      if (descriptor.get) {
        try {
          push(Reflect.apply(descriptor.get, receiver, []), `${path}.${name}<got>`);
        } catch {
          // a getter that refuses this receiver gives nothing
        }
      }
    }
  }
  return found;
}
