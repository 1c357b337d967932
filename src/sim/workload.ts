// The simulated applications: crypto users creating, using, sharing, unsharing and deleting
// keys (and trying keys they may not use), a crypto officer managing users and resetting a
// locked account, and an attacker guessing a password. Each is a ClusterConnection of its own;
// everything they were told goes into the History the invariant checkers read.
import { freezeClass } from "../primordials.js";
import { type ClusterConnection, CryptoUserSession, type KeyPairRef, type KeyRef, keyHandle } from "../client/api.js";
import { ClientError } from "../client/errors.js";
import { HsmError } from "../hsm/errors.js";
import { CKF_SERIAL_SESSION, CKS_RO_USER_FUNCTIONS, CKS_RW_USER_FUNCTIONS } from "../pkcs11/constants.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import type { WritePosition } from "../cluster/protocol.js";
import type { History } from "./invariants.js";
import type { CallContext, Health } from "./liveness.js";
import type { Rng } from "./random.js";
import type { World } from "./world.js";

export const OFFICER = { username: "admin", password: "officer-pass-1" };
const VICTIM = "victim";
const LOGGED_IN = new Set([CKS_RO_USER_FUNCTIONS, CKS_RW_USER_FUNCTIONS]);

interface CryptoActor {
  name: string;
  /** The client's own name: a user may run several clients (cu0 has a twin). */
  label: string;
  password: string;
  connection: ClusterConnection;
  session: CryptoUserSession | null;
  own: Map<number, KeyRef>;
  sharedWithMe: Set<number>;
  /** key id → users it was shared with (acknowledged or not). */
  sharedTo: Map<number, Set<string>>;
  deleted: number[];
  counter: number;
  /** This client's signing key pair (token keys, never deleted or shared). */
  pair: KeyPairRef | null;
  /** Session objects this client's application holds: label → handle, and when it was made. */
  sessionObjects: Map<string, { handle: Buffer; createdUs: number }>;
}

export interface WorkloadOptions {
  cryptoUsers: number;
  /** Mean pause between an actor's operations. */
  thinkUs: number;
  /** The fault state, for the availability checker (without it no window counts as clean). */
  health?: Health;
}

type Outcome = "ok" | "failed" | "unknown";

export class Workload {
  private readonly actors: CryptoActor[] = [];
  private officer!: ClusterConnection;
  private attacker!: ClusterConnection;
  /** A client working as the oldest temporary user, whose account the officer deletes under it. */
  private doomed!: ClusterConnection;
  private doomedSession: { name: string; session: CryptoUserSession } | null = null;
  private victimPassword = "victim-pass-0";
  private tempUsers: string[] = [];
  private tempCounter = 0;

  constructor(private readonly world: World, private readonly history: History, private readonly rng: Rng, private readonly options: WorkloadOptions) {}

  /** Client addresses, for partitions. */
  get clientAddresses(): string[] {
    return ["client-officer", "client-attacker", "client-doomed", ...this.actors.map((a) => `client-${a.label}`)];
  }

  /** Initializes and activates the cluster and creates the users (before faults start). */
  setup(): void {
    const { cluster } = this.world;
    cluster.initialize();
    this.officer = this.world.connect("officer");
    this.officer.console("admin", "password").changePassword("admin", OFFICER.password);
    const co = this.officer.console(OFFICER.username, OFFICER.password);
    for (let i = 0; i < this.options.cryptoUsers; i++) co.createUser(`cu${i}`, "CU", `cu${i}-pass-1`);
    co.createUser(VICTIM, "CU", this.victimPassword);
    this.world.run(1_000_000); // let the users reach every HSM
    for (let i = 0; i < this.options.cryptoUsers; i++) {
      const connection = this.world.connect(`cu${i}`);
      this.actors.push({ name: `cu${i}`, label: `cu${i}`, password: `cu${i}-pass-1`, connection, session: null, own: new Map(),
        sharedWithMe: new Set(), sharedTo: new Map(), deleted: [], counter: 0, pair: null, sessionObjects: new Map() });
    }
    // cu0 also works from a second client, on the same keys: its writes race the first client's
    // through other HSMs (shares against deletes, deletes against deletes).
    const first = this.actors[0];
    this.actors.push({ ...first, label: `${first.name}-twin`, connection: this.world.connect(`${first.name}-twin`), session: null,
      pair: null, sessionObjects: new Map() });
    this.attacker = this.world.connect("attacker");
    this.doomed = this.world.connect("doomed");
  }

  /** Starts every actor's loop; they stop scheduling new operations at `untilUs`. */
  start(untilUs: number): void {
    const loop = (name: string, step: () => void, thinkUs: number) => {
      const next = () => {
        if (this.world.clock.nowUs() >= untilUs) return;
        this.guard(name, step);
        this.world.clock.schedule(this.rng.between(thinkUs / 2, thinkUs * 3 / 2), next);
      };
      this.world.clock.schedule(this.rng.int(thinkUs), next);
    };
    for (const actor of this.actors) loop(actor.label, () => this.cryptoStep(actor), this.options.thinkUs);
    loop("officer", () => this.officerStep(), this.options.thinkUs * 8);
    loop("attacker", () => this.attackerStep(), this.options.thinkUs * 3);
    loop("doomed", () => this.doomedStep(), this.options.thinkUs * 2);
  }

  // ---- crypto users ----
  private cryptoStep(actor: CryptoActor): void {
    if (actor.session && !LOGGED_IN.has(actor.session.pkcs11.C_GetSessionInfo(actor.session.session).state)) {
      // An HSM refused the client's stored credentials (reset password, lockout): log in again.
      actor.session.close();
      actor.session = null;
    }
    if (!actor.session) {
      // Closing the last session ended the application's session objects.
      actor.sessionObjects.clear();
      const session = this.idempotent(actor, "login", () => actor.connection.login(actor.name, actor.password));
      if (session.outcome !== "ok") return;
      actor.session = session.value!;
    }
    const roll = this.rng.next();
    if (roll < 0.25 || actor.own.size === 0) return this.createKey(actor);
    if (roll < 0.42) return this.use(actor, this.rng.pick([...actor.own.keys()]), "own");
    if (roll < 0.5) return this.signRound(actor);
    if (roll < 0.6 && actor.sharedWithMe.size > 0) return this.use(actor, this.rng.pick([...actor.sharedWithMe.keys()]), "shared");
    if (roll < 0.65) return this.useForeign(actor);
    if (roll < 0.75) return this.share(actor);
    if (roll < 0.8) return this.unshare(actor);
    if (roll < 0.9) return this.deleteKey(actor);
    if (roll < 0.95 && actor.deleted.length > 0) return this.use(actor, this.rng.pick(actor.deleted));
    this.sessionObjectStep(actor);
  }

  private createKey(actor: CryptoActor): void {
    const label = `${actor.label}-${actor.counter++}`;
    const before = actor.connection.client.lastWrite;
    const r = this.attempt(() => actor.session!.generateAesKey({ label }));
    if (r.outcome !== "ok") return;
    const key = r.value!;
    this.acknowledged(actor.connection, before, `create key ${key.id} for ${actor.name}`);
    this.history.keyCreated(key.id, actor.name);
    actor.own.set(key.id, key);
    // The user's other client (the twin shares `own`) learns of the key the way an application passes it on: with the causality token.
    for (const client of this.clientsOf(actor.name)) if (client !== actor) client.connection.client.observe(actor.connection.client.causalityToken());
  }

  /** Encrypt+decrypt with a key; `expected`: the client holds it (own or shared), so it must work unless the retry table allows. */
  private use(actor: CryptoActor, id: number, expected?: "own" | "shared"): void {
    const key: KeyRef = { handle: keyHandle(id), id, label: "" };
    const started = this.history.tick();
    const plaintext = this.rng.bytes(this.rng.between(1, 64));
    const round = () => actor.session!.decrypt(key, actor.session!.encrypt(key, plaintext));
    const mayBeGone = () => ({ keyMayBeGone: this.history.removalAttempted.has(`${id}`) || this.history.removalAttempted.has(`${id}/${actor.name}`) });
    const r = expected ? this.idempotent(actor, `encrypt+decrypt (${expected} key ${id})`, round, mayBeGone) : this.attempt(round);
    if (r.outcome !== "ok") {
      this.history.counts.refusedUses++;
      return;
    }
    if (!r.value!.equals(plaintext)) this.history.violations.push({ invariant: "unexpected-error", detail: `${actor.name}: key ${id} decrypted to other bytes` });
    this.history.used(id, actor.name, actor.label, started, "encrypt+decrypt");
  }

  /** Sign+verify with the client's own key pair (made on first use). */
  private signRound(actor: CryptoActor): void {
    if (!actor.pair) {
      const made = this.attempt(() => actor.session!.generateEcKeyPair({ label: `${actor.label}-signing` }));
      if (made.outcome === "ok") actor.pair = made.value!;
      return;
    }
    const pair = actor.pair;
    const data = this.rng.bytes(this.rng.between(1, 64));
    const r = this.idempotent(actor, `sign+verify (key ${pair.privateKey.id})`, () => actor.session!.verify(pair.publicKey, data, actor.session!.sign(pair.privateKey, data)));
    if (r.outcome === "ok" && r.value !== true) this.history.violations.push({ invariant: "unexpected-error", detail: `${actor.label}: its own signature did not verify` });
  }

  /**
   * Session objects: create one, or search for one the application holds (it must be found
   * while its HSM lives), use it, or destroy it; another application's search for its label
   * must find nothing, ever.
   */
  private sessionObjectStep(actor: CryptoActor): void {
    const session = actor.session!;
    const held = [...actor.sessionObjects];
    const roll = this.rng.next();
    if (held.length === 0 || (roll < 0.4 && held.length < 3)) {
      const label = `${actor.label}-so-${actor.counter++}`;
      const createdUs = this.world.clock.nowUs();
      const r = this.attempt(() => session.generateAesKey({ label, token: false }));
      if (r.outcome === "ok") actor.sessionObjects.set(label, { handle: r.value!.handle, createdUs });
      return;
    }
    const [label, object] = this.rng.pick(held);
    if (roll < 0.85) {
      const context = (): CallContext => ({ sessionObjectMayBeGone: !this.health?.unchangedSince(object.createdUs) });
      this.history.counts.sessionObjectFinds++;
      const found = this.idempotent(actor, `find own session object ${label}`, () => session.findKeys(label), context);
      if (found.outcome === "ok") {
        const mine = found.value!.some((k) => k.handle.equals(object.handle));
        if (!mine && !context().sessionObjectMayBeGone) {
          this.history.violations.push({ invariant: "session-object-invisible", detail: `${actor.label}: its session object ${label} was not found while its HSM lived` });
        }
        if (!mine) actor.sessionObjects.delete(label); // died with its HSM
        else {
          const key: KeyRef = { handle: object.handle, id: 0, label };
          const data = this.rng.bytes(16);
          const used = this.idempotent(actor, `use own session object ${label}`, () => session.decrypt(key, session.encrypt(key, data)), context);
          if (used.outcome === "ok" && !used.value!.equals(data)) this.history.violations.push({ invariant: "unexpected-error", detail: `${label} decrypted to other bytes` });
        }
      }
      // Another application, logged in, searches for the same label: it must see nothing.
      const spies = this.actors.filter((a) => a.connection !== actor.connection && a.session !== null);
      const spy = spies.length > 0 ? this.rng.pick(spies) : null;
      if (spy) {
        this.history.counts.foreignFinds++;
        // Its own short session: the spy's main session may be in the middle of a step of its own.
        const seen = this.attempt(() => {
          const pkcs11 = spy.connection.pkcs11();
          const search = new CryptoUserSession(pkcs11, pkcs11.C_OpenSession(Buffer.alloc(8), CKF_SERIAL_SESSION));
          try {
            return search.findKeys(label);
          } finally {
            search.close();
          }
        });
        if (seen.outcome === "ok" && seen.value!.length > 0) {
          this.history.violations.push({ invariant: "session-object-leaked", detail: `${spy.label} found ${actor.label}'s session object ${label}` });
        }
      }
      return;
    }
    actor.sessionObjects.delete(label);
    this.attempt(() => session.deleteKey({ handle: object.handle, id: 0, label }));
  }

  private get health(): Health | undefined {
    return this.options.health;
  }

  private useForeign(actor: CryptoActor): void {
    const foreign = [...this.history.createdKeys].filter(([id, owner]) => owner !== actor.name && !actor.sharedWithMe.has(id));
    if (foreign.length === 0) return;
    this.use(actor, this.rng.pick(foreign)[0]);
  }

  private share(actor: CryptoActor): void {
    const others = this.actors.filter((a) => a.name !== actor.name);
    if (actor.own.size === 0 || others.length === 0) return;
    const key = this.rng.pick([...actor.own.values()]);
    const target = this.rng.pick(others);
    this.history.grant(key.id, target.name); // from the attempt on: the outcome may be unknown
    const set = actor.sharedTo.get(key.id) ?? new Set();
    set.add(target.name);
    actor.sharedTo.set(key.id, set);
    const before = actor.connection.client.lastWrite;
    const r = this.attempt(() => actor.connection.console(actor.name, actor.password).shareKey(key.id, target.name));
    this.history.grantSettled(key.id, target.name);
    if (r.outcome !== "ok") return;
    this.acknowledged(actor.connection, before, `share key ${key.id} with ${target.name}`);
    for (const client of this.clientsOf(target.name)) {
      client.connection.client.observe(actor.connection.client.causalityToken());
      client.sharedWithMe.add(key.id);
    }
  }

  private unshare(actor: CryptoActor): void {
    const shared = [...actor.sharedTo].filter(([id, users]) => actor.own.has(id) && users.size > 0);
    if (shared.length === 0) return;
    const [id, users] = this.rng.pick(shared);
    const targetName = this.rng.pick([...users]);
    const before = actor.connection.client.lastWrite;
    const attemptedAt = this.history.tick();
    this.history.removalAttempted.add(`${id}/${targetName}`);
    const r = this.attempt(() => actor.connection.console(actor.name, actor.password).unshareKey(id, targetName));
    if (r.outcome !== "ok") return;
    this.acknowledged(actor.connection, before, `unshare key ${id} from ${targetName}`);
    users.delete(targetName);
    this.revokeFor(targetName, id, actor, "unshare", attemptedAt);
  }

  private deleteKey(actor: CryptoActor): void {
    if (actor.own.size === 0) return;
    const key = this.rng.pick([...actor.own.values()]);
    const before = actor.connection.client.lastWrite;
    const attemptedAt = this.history.tick();
    this.history.removalAttempted.add(`${key.id}`);
    const r = this.attempt(() => actor.session!.deleteKey(key));
    if (r.outcome !== "ok") return;
    this.acknowledged(actor.connection, before, `delete key ${key.id}`);
    actor.own.delete(key.id);
    actor.deleted.push(key.id);
    for (const name of [actor.name, ...(actor.sharedTo.get(key.id) ?? [])]) this.revokeFor(name, key.id, actor, "delete", attemptedAt);
  }

  // ---- officer: temporary users, and unlocking the victim ----
  private officerStep(): void {
    const co = this.officer.console(OFFICER.username, OFFICER.password);
    const roll = this.rng.next();
    if (roll < 0.4) {
      const name = `temp${this.tempCounter++}`;
      const before = this.officer.client.lastWrite;
      if (this.attempt(() => co.createUser(name, "CU", "temp-pass-1")).outcome === "ok") {
        this.tempUsers.push(name);
        this.acknowledged(this.officer, before, `create user ${name}`);
      }
    } else if (roll < 0.7 && this.tempUsers.length > 0) {
      const name = this.tempUsers[0];
      const before = this.officer.client.lastWrite;
      if (this.attempt(() => co.deleteUser(name)).outcome === "ok") {
        this.tempUsers.shift();
        this.acknowledged(this.officer, before, `delete user ${name}`);
      }
    } else {
      const password = `victim-pass-${this.tempCounter++}`;
      const before = this.officer.client.lastWrite;
      if (this.attempt(() => co.changePassword(VICTIM, password)).outcome === "ok") {
        this.victimPassword = password;
        this.acknowledged(this.officer, before, "reset the victim's password");
        this.attacker.client.observe(this.officer.client.causalityToken());
      }
    }
  }

  // ---- a user about to be deleted: its open session keeps making keys; once an HSM applied the delete, none may succeed there ----
  private doomedStep(): void {
    if (!this.doomedSession) {
      const name = this.tempUsers[0];
      if (name === undefined) return;
      const r = this.attempt(() => this.doomed.login(name, "temp-pass-1"));
      if (r.outcome === "ok") this.doomedSession = { name, session: r.value! };
      return;
    }
    const { session } = this.doomedSession;
    const r = this.attempt(() => session.deleteKey(session.generateAesKey({ label: "doomed", token: false })));
    const state = this.attempt(() => session.pkcs11.C_GetSessionInfo(session.session).state);
    if (r.outcome === "failed" && state.outcome === "ok" && !LOGGED_IN.has(state.value!)) {
      // Revoked: the client stopped offering the credentials. Start over with whoever is oldest now.
      this.attempt(() => session.close());
      this.doomedSession = null;
    }
  }

  // ---- attacker: wrong passwords, sometimes the right one ----
  private attackerStep(): void {
    const right = this.rng.chance(0.1);
    this.history.counts.logins++;
    const r = this.attempt(() => this.attacker.login(VICTIM, right ? this.victimPassword : "wrong-password-x").close());
    if (r.outcome === "failed" && r.error instanceof Pkcs11Error && r.error.message === "CKR_PIN_LOCKED") this.history.counts.lockedRefusals++;
  }

  // ---- helpers ----
  private clientsOf(user: string): CryptoActor[] {
    return this.actors.filter((a) => a.name === user);
  }

  /** Every client of `user` learns (through `from`'s causality token) that the key is gone for it. */
  private revokeFor(user: string, keyId: number, from: CryptoActor, kind: "delete" | "unshare", attemptedAt: number): void {
    for (const client of this.clientsOf(user)) {
      client.connection.client.observe(from.connection.client.causalityToken());
      client.sharedWithMe.delete(keyId);
      this.history.revoke(keyId, client.label, kind, attemptedAt);
    }
  }

  private acknowledged(connection: ClusterConnection, before: WritePosition | null, what: string): void {
    const after = connection.client.lastWrite;
    this.history.counts.acknowledged++;
    if (after !== before) this.history.acknowledge(after, what);
  }

  /** Runs an idempotent operation and records it for the availability checker. */
  private idempotent<T>(actor: CryptoActor, what: string, fn: () => T, context: () => CallContext = () => ({})): { outcome: Outcome; value?: T; error?: Error } {
    const startUs = this.world.clock.nowUs();
    const r = this.attempt(fn);
    const clean = this.health?.cleanSince(startUs) ?? false;
    this.history.idempotent(what, actor.label, startUs, this.world.clock.nowUs(), clean, r.error, r.outcome === "ok" ? {} : context());
    return r;
  }

  /** Runs one operation; the cluster's refusals and faults are outcomes, anything else is a bug. */
  private attempt<T>(fn: () => T): { outcome: Outcome; value?: T; error?: Error } {
    this.history.counts.attempted++;
    try {
      return { outcome: "ok", value: fn() };
    } catch (e) {
      const unknown = (e instanceof ClientError && e.code === "OUTCOME_UNKNOWN") || (e instanceof Pkcs11Error && (e.detail ?? "").startsWith("OUTCOME_UNKNOWN"));
      if (unknown) {
        this.history.counts.unknown++;
        return { outcome: "unknown", error: e as Error };
      }
      if (e instanceof Pkcs11Error || e instanceof HsmError || e instanceof ClientError) {
        this.history.counts.failed++;
        return { outcome: "failed", error: e };
      }
      throw e;
    }
  }

  private guard(name: string, step: () => void): void {
    try {
      step();
    } catch (e) {
      this.history.violations.push({ invariant: "unexpected-error", detail: `${name}: ${e instanceof Error ? e.stack : String(e)}` });
    }
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(Workload);
