// @peculiar/x509 loads tsyringe, which refuses to load without a Reflect metadata polyfill
// (reflect-metadata) that this package does not depend on. x509's classes need no constructor
// metadata, so while x509 loads Reflect gets three inert functions, removed again by
// x509-lib.ts once it has loaded: the application's global Reflect is left as it was.
// If the application already has a polyfill, it is used and nothing is touched.
type MetadataReflect = { getMetadata?: unknown; getOwnMetadata?: unknown; defineMetadata?: unknown };
const reflect = Reflect as unknown as MetadataReflect;

export const reflectShimInstalled = typeof reflect.getMetadata !== "function";
if (reflectShimInstalled) {
  reflect.getMetadata = () => undefined;
  reflect.getOwnMetadata = () => undefined;
  reflect.defineMetadata = () => undefined;
}

export function removeReflectShim(): void {
  if (!reflectShimInstalled) return;
  delete reflect.getMetadata;
  delete reflect.getOwnMetadata;
  delete reflect.defineMetadata;
}
