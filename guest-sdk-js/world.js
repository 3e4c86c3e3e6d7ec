// The module's side of the contract (`wit/query.wit`, version 0.2): the export the room calls.
//
// The build command bundles an entry point that calls `exportRun` for the partner's query and
// exports the result as the world's `run`. Only this file touches the shapes componentize-js
// gives the contract's types, so the rest of the package runs anywhere.

import { QueryError, runEntities, startsOf } from "./index.js";
import { errorText } from "./world-text.js";

/** The world's `run` for `query`. */
export function exportRun(query) {
  return function run(batch) {
    let result;
    try {
      if (batch.count === 0) {
        throw new QueryError("this module runs in isolated or batched mode; the room called it in table mode");
      }
      if (batch.tables.length !== query.reads.length) {
        throw new QueryError(`the room sent ${batch.tables.length} tables for ${query.reads.length} read`);
      }
      const tables = batch.tables.map((rows, t) => {
        if (rows.rowCounts.length !== batch.count) {
          throw new QueryError(`the room sent ${rows.rowCounts.length} row counts for table #${t}, for ${batch.count} entities`);
        }
        return [rows.columns.map((c) => c.val), startsOf(rows.rowCounts)];
      });
      result = runEntities(query, tables, batch.domainSizes, batch.count);
    } catch (e) {
      // The partner's error is the module's error text (a result's `err`), never a trap.
      throw errorText(e);
    }
    const { cells, bounding } = result;
    return {
      entities: Uint32Array.from(cells.entities),
      metrics: Uint32Array.from(cells.metrics),
      groups: BigUint64Array.from(cells.groups, (g) => BigInt(g)),
      counts: Uint32Array.from(cells.counts),
      sums: BigInt64Array.from(cells.sums, (s) => BigInt(s)),
      bounding: {
        droppedOverGroupLimit: BigInt(bounding[0]),
        droppedOverContributionLimit: BigInt(bounding[1]),
        clamped: BigInt(bounding[2]),
      },
    };
  };
}
