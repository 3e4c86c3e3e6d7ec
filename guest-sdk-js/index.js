// strongroom-guest: write a Strongroom query module in JavaScript.
//
// A module declares what it reads and what it releases, and a function that runs for each
// customer (in a fresh instance, isolated mode; or for batches of customers, once the bank has
// approved the module):
//
//   import { CATEGORY, FLOAT, Metric, Query, Table, rows } from "strongroom-guest";
//
//   const transactions = new Table("transactions", { mcc_group: CATEGORY, amount: FLOAT });
//   const SPEND = Metric.sum("spend", [transactions.column("mcc_group")], 0, 5000,
//                            { maxContributionsPerGroup: 50 });
//   export const query = new Query({
//     name: "spend-by-mcc", version: "0.1.0", reads: [transactions], metrics: [SPEND],
//     maxGroupsPerEntity: 10,
//     run() {
//       for (const tx of rows(transactions)) SPEND.add([tx.mcc_group], tx.amount);
//     },
//   });
//
// `strongroom-guest-js build query.js -o query.wasm` bundles it, builds the component with
// componentize-js and embeds the manifest; docs/guest-js.md walks through it.
//
// Bounding follows the room's rules to the letter (the room checks every cell against them, and
// the Rust SDK bounds the same way): a value is scaled to the metric's decimals, rounded half
// away from zero and clamped to its bounds; a customer keeps the first
// `maxContributionsPerGroup` contributions to a group and the first `maxGroupsPerEntity` groups
// of a metric, in the order it made them. A JavaScript module gives exactly the Rust module's
// aggregates. This file imports nothing from the room: it runs in Node as well, for tests.

export const INT = "int";
export const FLOAT = "float";
export const BOOL = "bool";
export const DATE = "date";
export const CATEGORY = "category";

const TYPES = new Set([INT, FLOAT, BOOL, DATE, CATEGORY]);
const KINDS = new Set(["sum", "count", "mean", "distinct"]);
const MAX_DECIMALS = 9;
const MAX_KEY_PARTS = 4;

/** A declaration the room would refuse, named before anything is built. */
export class ManifestError extends Error {
  constructor(message) {
    super(message);
    this.name = "ManifestError";
  }
}

/** Throw it to fail the current customer with this text (shown to the bank only). */
export class QueryError extends Error {
  constructor(message) {
    super(message);
    this.name = "QueryError";
  }
}

/** One column of a declared table; a category column can be a group key part. */
export class Column {
  constructor(table, name, type, index) {
    this.table = table;
    this.name = name;
    this.type = type;
    this.index = index;
  }
  toString() {
    return `${this.table}.${this.name}`;
  }
}

/**
 * The columns a module reads from one table, with their types, in the order given:
 * `new Table("transactions", { mcc_group: CATEGORY, amount: FLOAT })`.
 */
export class Table {
  constructor(name, columns) {
    if (typeof name !== "string" || !name) throw new ManifestError("a table needs a name");
    const entries = Object.entries(columns ?? {});
    if (entries.length === 0) throw new ManifestError(`table '${name}': read at least one column`);
    this.name = name;
    this.columns = entries.map(([column, type], i) => {
      if (!TYPES.has(type)) {
        throw new ManifestError(
          `table '${name}', column '${column}': type ${JSON.stringify(type)} is not one of int, float, bool, date, category`,
        );
      }
      return new Column(name, column, type, i);
    });
  }
  /** The column named `name`, to use as a group key part. */
  column(name) {
    const c = this.columns.find((c) => c.name === name);
    if (!c) throw new ManifestError(`table '${this.name}' does not read a column '${name}'`);
    return c;
  }
}

/** A group key part whose members the manifest lists itself. */
export class Enumeration {
  constructor(name, members) {
    if (typeof name !== "string" || !name) throw new ManifestError("an enumeration needs a name");
    members = [...(members ?? [])];
    if (members.length === 0) throw new ManifestError(`enumeration '${name}' needs at least one member`);
    this.name = name;
    this.members = members;
  }
  /** The index of `member`, the key part a contribution carries. */
  index(member) {
    return this.members.indexOf(member);
  }
}

export const Domain = {
  column: (table, column) => `${table}.${column}`,
  enumeration: (name, members) => new Enumeration(name, members),
  MONTHS: new Enumeration("month", [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
  ]),
};

function domainOf(metric, part) {
  if (part instanceof Column) {
    if (part.type !== CATEGORY) {
      throw new ManifestError(
        `metric '${metric}': key part ${part} is a ${part.type} column; only category columns have a public domain`,
      );
    }
    return [part.table, part.name];
  }
  if (part instanceof Enumeration) return part;
  if (typeof part === "string" && part.split(".").length === 2) return part.split(".");
  throw new ManifestError(`metric '${metric}': key part ${String(part)} is neither a category column nor an enumeration`);
}

/** A released number per group: `Metric.sum`, `.count`, `.mean` or `.distinct`. */
export class Metric {
  constructor(name, kind, key, lower, upper, decimals = 2, maxContributionsPerGroup = 1) {
    if (typeof name !== "string" || !name) throw new ManifestError("a metric needs a name");
    if (!KINDS.has(kind)) throw new ManifestError(`metric '${name}': kind ${JSON.stringify(kind)} is not one of sum, count, mean, distinct`);
    const parts = Array.isArray(key) ? key : [key];
    if (parts.length < 1 || parts.length > MAX_KEY_PARTS) {
      throw new ManifestError(`metric '${name}': a group key has 1 to ${MAX_KEY_PARTS} parts, got ${parts.length}`);
    }
    for (const b of [lower, upper]) {
      if (typeof b !== "number" || !Number.isFinite(b)) {
        throw new ManifestError(`metric '${name}': bounds must be finite numbers, got ${String(b)}`);
      }
    }
    if (lower > upper) throw new ManifestError(`metric '${name}': lower bound ${lower} is above upper bound ${upper}`);
    if (!Number.isInteger(decimals) || decimals < 0 || decimals > MAX_DECIMALS) {
      throw new ManifestError(`metric '${name}': decimals must be 0 to ${MAX_DECIMALS}, got ${String(decimals)}`);
    }
    if (!Number.isInteger(maxContributionsPerGroup) || maxContributionsPerGroup < 1 || maxContributionsPerGroup >= 2 ** 32) {
      throw new ManifestError(`metric '${name}': maxContributionsPerGroup must be at least 1, got ${String(maxContributionsPerGroup)}`);
    }
    this.name = name;
    this.kind = kind;
    this.key = parts.map((p) => domainOf(name, p));
    this.lower = lower;
    this.upper = upper;
    this.decimals = decimals;
    this.maxContributionsPerGroup = maxContributionsPerGroup;
    /** Set when a `Query` lists the metric: its index in the manifest. */
    this.index = undefined;
  }
  /** The sum of values per group, each clamped to [lower, upper]. */
  static sum(name, key, lower, upper, { decimals = 2, maxContributionsPerGroup = 1 } = {}) {
    return new Metric(name, "sum", key, lower, upper, decimals, maxContributionsPerGroup);
  }
  /** How many contributions per group (their values are ignored). */
  static count(name, key, { maxContributionsPerGroup = 1 } = {}) {
    return new Metric(name, "count", key, 0, 1, 2, maxContributionsPerGroup);
  }
  /** The mean of values per group, each clamped to [lower, upper]. */
  static mean(name, key, lower, upper, { decimals = 2, maxContributionsPerGroup = 1 } = {}) {
    return new Metric(name, "mean", key, lower, upper, decimals, maxContributionsPerGroup);
  }
  /** How many customers per group: a customer counts once, however often it says so. */
  static distinct(name, key) {
    return new Metric(name, "distinct", key, 0, 0, 2, 1);
  }
  /** Contributes `value` to the group `key` (one index per key part) for the current customer. */
  add(key, value = 1) {
    add(this, key, value);
  }
  /** Contributes one to a count under `key`. */
  addOne(key) {
    add(this, key, 1);
  }
}

/** The whole manifest and the function that runs for each customer. */
export class Query {
  constructor({ name, version, reads, metrics, maxGroupsPerEntity, mode = "isolated", run }) {
    if (!name || !version) throw new ManifestError("a query needs a name and a version");
    if (mode === "table") {
      throw new ManifestError("table mode is written with the Rust SDK (docs/guest-sdk.md); JavaScript modules run in isolated mode (and batched, once the bank approves)");
    }
    if (mode !== "isolated") throw new ManifestError(`mode ${JSON.stringify(mode)} is not one of isolated, table`);
    if (!Number.isInteger(maxGroupsPerEntity) || maxGroupsPerEntity < 1 || maxGroupsPerEntity >= 2 ** 32) {
      throw new ManifestError(`maxGroupsPerEntity must be at least 1, got ${String(maxGroupsPerEntity)}`);
    }
    if (!metrics || metrics.length === 0) throw new ManifestError("a query declares at least one metric");
    if (typeof run !== "function") throw new ManifestError(`query '${name}' needs a run function`);
    this.name = name;
    this.version = version;
    this.mode = mode;
    this.reads = [...reads];
    this.metrics = [...metrics];
    this.maxGroupsPerEntity = maxGroupsPerEntity;
    this.run = run;
    const tables = new Set();
    for (const t of this.reads) {
      if (tables.has(t.name)) throw new ManifestError(`table '${t.name}' is listed twice in reads`);
      tables.add(t.name);
    }
    const names = new Set();
    this.metrics.forEach((m, i) => {
      if (names.has(m.name)) throw new ManifestError(`metric '${m.name}' is declared twice`);
      names.add(m.name);
      if (m.index !== undefined && m.index !== i) {
        throw new ManifestError(`metric '${m.name}' is listed by two queries at different places`);
      }
      m.index = i;
      for (const part of m.key) {
        if (Array.isArray(part)) {
          const t = this.reads.find((t) => t.name === part[0]);
          const c = t?.columns.find((c) => c.name === part[1]);
          if (!c || c.type !== CATEGORY) {
            throw new ManifestError(`metric '${m.name}': key part ${part[0]}.${part[1]} is not a category column the query reads`);
          }
        }
      }
    });
  }

  /** The manifest as `strongroom module embed-manifest` reads it. */
  toToml() {
    const s = (x) => JSON.stringify(String(x)); // TOML basic strings escape as JSON's do
    const f = (x) => {
      const t = String(x);
      return /^-?\d+$/.test(t) ? `${t}.0` : t; // TOML floats need a point or an exponent
    };
    const out = [
      `name = ${s(this.name)}`,
      `version = ${s(this.version)}`,
      `mode = ${s(this.mode)}`,
      `max_groups_per_entity = ${this.maxGroupsPerEntity}`,
    ];
    for (const t of this.reads) {
      out.push("", "[[reads]]", `table = ${s(t.name)}`);
      out.push(`columns = [${t.columns.map((c) => `{ name = ${s(c.name)}, type = ${s(c.type)} }`).join(", ")}]`);
    }
    for (const m of this.metrics) {
      out.push("", "[[metrics]]", `name = ${s(m.name)}`, `kind = ${s(m.kind)}`);
      const parts = m.key.map((p) =>
        p instanceof Enumeration
          ? `{ enumeration = ${s(p.name)}, members = [${p.members.map(s).join(", ")}] }`
          : s(`${p[0]}.${p[1]}`),
      );
      out.push(`key = [${parts.join(", ")}]`);
      out.push(`lower = ${f(m.lower)}`, `upper = ${f(m.upper)}`, `decimals = ${m.decimals}`);
      out.push(`max_contributions_per_group = ${m.maxContributionsPerGroup}`);
    }
    return out.join("\n") + "\n";
  }
}

/** `x` rounded to the nearest integer, halves away from zero: the room's definition. */
export function roundHalfAwayFromZero(x) {
  const whole = Math.trunc(x);
  return Math.abs(x - whole) >= 0.5 ? whole + Math.sign(x) : whole;
}

function asI64(x) {
  // Rust's `as i64` for a whole float, saturating; exact as a BigInt beyond 2^53.
  if (Number.isNaN(x)) return 0n;
  if (x >= 9.223372036854775807e18) return 2n ** 63n - 1n;
  if (x <= -9.223372036854775808e18) return -(2n ** 63n);
  return BigInt(x);
}

/** Bounds `[lower, upper]` at `decimals` places, as the room defines them. */
export class FixedPoint {
  constructor(lower, upper, decimals) {
    let scale = 1;
    for (let i = 0; i < decimals; i++) scale *= 10; // as Rust's powi: exact for 0..=9 places
    this.scale = scale;
    this.lower = asI64(roundHalfAwayFromZero(lower * scale));
    this.upper = asI64(roundHalfAwayFromZero(upper * scale));
    this.lowerF = Number(this.lower);
    this.upperF = Number(this.upper);
    // What `bound` returns for a clamped value: a Number when exact, as for any other value.
    this.lowerOut = Number.isSafeInteger(this.lowerF) ? this.lowerF : this.lower;
    this.upperOut = Number.isSafeInteger(this.upperF) ? this.upperF : this.upper;
    this.clamped = false;
  }
  /** `value` in fixed point (a Number when exact, else a BigInt), and whether it was clamped. */
  bound(value) {
    const fixed = this.fixed(value);
    return [fixed, this.clamped];
  }
  /** `value` in fixed point; `this.clamped` then says whether clamping changed it (no array is
   * made: this runs for every contribution). */
  fixed(value) {
    const y = value * this.scale;
    this.clamped = true;
    if (y === Infinity) return this.upperOut;
    if (y === -Infinity) return this.lowerOut;
    const fixed = roundHalfAwayFromZero(y);
    if (fixed < this.lowerF) return this.lowerOut;
    if (fixed > this.upperF) return this.upperOut;
    this.clamped = false;
    return Number.isSafeInteger(fixed) ? fixed : BigInt(fixed);
  }
}

class MetricState {
  constructor(metric, sizes, maxGroups) {
    this.metric = metric;
    this.fixed = new FixedPoint(metric.lower, metric.upper, metric.decimals);
    this.maxPerGroup = metric.maxContributionsPerGroup;
    this.sizes = sizes;
    // A group's dense index fits a Number exactly unless the domain is huge.
    this.big = sizes.reduce((a, b) => a * b, 1) > Number.MAX_SAFE_INTEGER;
    this.groups = new Map(); // dense index -> { count, sum }, in first-contributed order
    this.countsOnly = metric.kind === "count" || metric.kind === "distinct";
    this.distinct = metric.kind === "distinct";
    this.maxGroups = maxGroups;
  }
}

let CURRENT = null;

function add(metric, key, value) {
  const call = CURRENT;
  if (call === null) throw new QueryError(`metric '${metric.name}': contributions are made while run() serves a customer`);
  if (Number.isNaN(value)) throw new QueryError(`metric '${metric.name}': contributed a value that is not a number`);
  const state = call.metrics[metric.index];
  if (state === undefined || state.metric !== metric) {
    throw new QueryError(`metric '${metric.name}' is not listed in the query's metrics`);
  }
  const sizes = state.sizes;
  if (typeof key === "number") key = [key];
  if (key.length !== sizes.length) {
    throw new QueryError(`metric '${metric.name}' has a group key of ${sizes.length} part(s), got ${key.length}`);
  }
  let group = state.big ? 0n : 0;
  for (let part = 0; part < sizes.length; part++) {
    const k = key[part];
    const size = sizes[part];
    if (!(Number.isInteger(k) && k >= 0 && k < size)) {
      throw new QueryError(`metric '${metric.name}': group key part ${part} is ${k}, outside its public domain (${size} entries)`);
    }
    group = state.big ? group * BigInt(size) + BigInt(k) : group * size + k;
  }
  let g = state.groups.get(group);
  if (g === undefined) {
    if (state.groups.size >= state.maxGroups) {
      call.droppedOverGroupLimit++;
      return;
    }
    g = { count: 0, sum: 0 };
    state.groups.set(group, g);
  }
  if (g.count >= state.maxPerGroup) {
    // A distinct metric counts the customer once, however often it says so.
    if (!state.distinct) call.droppedOverContributionLimit++;
    return;
  }
  g.count++;
  if (!state.countsOnly) {
    const point = state.fixed;
    const fixed = point.fixed(Number(value));
    if (point.clamped) call.clamped++;
    const sum = typeof g.sum === "number" && typeof fixed === "number" ? g.sum + fixed : NaN;
    g.sum = Number.isSafeInteger(sum) ? sum : BigInt(g.sum) + BigInt(fixed);
  }
}

function tableIndex(call, table, what) {
  const name = typeof table === "string" ? table : table?.name;
  const i = call.query.reads.findIndex((t) => t === table || t.name === name);
  if (i < 0) throw new QueryError(`${what}(${name}): the query does not read table '${name}'`);
  return i;
}

/** The current customer's rows of `table`, each an object with one property per column. */
export function rows(table) {
  const call = CURRENT;
  if (call === null) throw new QueryError(`rows(${table?.name}): rows are read while run() serves a customer`);
  const i = tableIndex(call, table, "rows");
  const t = call.query.reads[i];
  const [columns, starts] = call.tables[i];
  const a = starts[call.entity];
  const b = starts[call.entity + 1];
  const out = new Array(b - a);
  const names = t.columns.map((c) => c.name);
  for (let r = a; r < b; r++) {
    // No prototype: a column may be named anything, `__proto__` and `constructor` included.
    const row = Object.create(null);
    for (let c = 0; c < names.length; c++) row[names[c]] = columns[c][r];
    out[r - a] = row;
  }
  return out;
}

/** The current customer's rows of `table` as one array per column, by name: the fastest way
 * through many rows. */
export function columns(table) {
  const call = CURRENT;
  if (call === null) throw new QueryError(`columns(${table?.name}): rows are read while run() serves a customer`);
  const i = tableIndex(call, table, "columns");
  const t = call.query.reads[i];
  const [cols, starts] = call.tables[i];
  const a = starts[call.entity];
  const b = starts[call.entity + 1];
  const out = Object.create(null);
  t.columns.forEach((c, k) => {
    out[c.name] = cols[k].slice(a, b);
  });
  return out;
}

/** Where each customer's rows start, plus the end. */
export function startsOf(rowCounts) {
  const at = new Array(rowCounts.length + 1);
  at[0] = 0;
  for (let i = 0; i < rowCounts.length; i++) at[i + 1] = at[i] + rowCounts[i];
  return at;
}

/**
 * Runs the query once per customer of a call; returns the cells as five arrays and the bounding
 * counters. The first customer whose run fails fails the call (the room then runs each customer
 * of the call on its own, so only that one loses its contributions).
 */
export function runEntities(query, tables, domainSizes, count) {
  const call = {
    query,
    tables,
    entity: 0,
    metrics: query.metrics.map((m, i) => new MetricState(m, [...(domainSizes[i] ?? [])], query.maxGroupsPerEntity)),
    droppedOverGroupLimit: 0,
    droppedOverContributionLimit: 0,
    clamped: 0,
  };
  const out = { entities: [], metrics: [], groups: [], counts: [], sums: [] };
  CURRENT = call;
  try {
    for (let entity = 0; entity < count; entity++) {
      call.entity = entity;
      query.run();
      call.metrics.forEach((state, m) => {
        if (state.groups.size === 0) return;
        const keys = [...state.groups.keys()].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
        for (const group of keys) {
          const g = state.groups.get(group);
          out.entities.push(entity);
          out.metrics.push(m);
          out.groups.push(group);
          out.counts.push(g.count);
          out.sums.push(g.sum);
        }
        state.groups = new Map();
      });
    }
  } finally {
    CURRENT = null;
  }
  return {
    cells: out,
    bounding: [call.droppedOverGroupLimit, call.droppedOverContributionLimit, call.clamped],
  };
}

let SCHEMA = null;
let WARMING = false;

/** Called by the module's entry point with the room's `schema` interface. */
export function installSchema(schema) {
  SCHEMA = schema;
}

function schema(what) {
  if (WARMING) throw new QueryError(`${what}: the room answers only when the module runs`);
  if (SCHEMA === null) throw new QueryError(`${what}: only inside a module`);
  return SCHEMA;
}

/** The public dictionary of a category column the query reads. */
export function dictionary(table, column) {
  return schema("dictionary").dictionary(table, column);
}

/** The job's parameters as the partner submitted them, as an object. */
export function parameters() {
  return Object.fromEntries(schema("parameters").parameters());
}

/** One of the job's parameters, or `fallback`. */
export function parameter(name, fallback = undefined) {
  return parameters()[name] ?? fallback;
}

const WARM_VALUES = {
  int: (i) => BigInt(i % 7),
  float: (i) => 12.5 * (i % 9) + 0.25,
  bool: (i) => i % 2 === 0,
  date: (i) => 19700 + i,
  category: (i) => i % 2,
};

/**
 * Runs `query` a few times on made-up rows. The build calls it before componentize-js snapshots
 * the engine, so that every customer's fresh instance starts with the query's code already run
 * (SpiderMonkey's shapes, caches and lazily compiled functions made). Errors the made-up rows
 * cause are ignored. A query whose results on the same rows change from one round to the next
 * keeps state between customers, which warming would leave in every customer's instance: it is
 * refused.
 */
export function warm(query, { customers = 4, rows = 24, rounds = 8 } = {}) {
  const tables = query.reads.map((t, n) => {
    const count = n === 0 ? 1 : rows;
    const cols = t.columns.map((c) => {
      const values = Array.from({ length: count * customers }, (_, i) => WARM_VALUES[c.type](i));
      if (c.type === "int") return BigInt64Array.from(values);
      if (c.type === "float") return Float64Array.from(values);
      if (c.type === "date") return Int32Array.from(values);
      if (c.type === "category") return Uint32Array.from(values);
      return values;
    });
    return [cols, startsOf(new Array(customers).fill(count))];
  });
  const sizes = query.metrics.map((m) => m.key.map((p) => (p instanceof Enumeration ? p.members.length : 2)));
  const attempt = () => {
    try {
      const out = runEntities(query, tables, sizes, customers);
      return JSON.stringify(out, (_, v) => (typeof v === "bigint" ? v.toString() : v));
    } catch (e) {
      // made-up rows may not suit the query; what ran is warm all the same
      return `error: ${e?.message ?? e}`;
    }
  };
  WARMING = true;
  let first;
  let last;
  try {
    first = attempt();
    for (let i = 1; i < rounds; i++) last = attempt();
  } finally {
    WARMING = false;
  }
  if (last !== undefined && last !== first) {
    throw new QueryError(
      "run() gave other results for the same rows on another call: it keeps state between customers (build with STRONGROOM_GUEST_WARM=0 to skip warming)",
    );
  }
}
