// Checks the SDK's bounding against cases the room's own definition computed
// (`strongroom-contract`'s FixedPoint): `node check-bounding.js CASES.json`.
//
// Each case is [value, lower, upper, decimals, fixed, clamped], numbers as text so none is
// rounded on the way. The room's test suite writes the cases (cli/tests/cli/other_languages.rs).

import { readFileSync } from "node:fs";
import { FixedPoint } from "../index.js";

const number = (t) => (t === "inf" ? Infinity : t === "-inf" ? -Infinity : Number(t));
const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
const wrong = [];
for (const [value, lower, upper, decimals, fixed, clamped] of cases) {
  const [got, was] = new FixedPoint(number(lower), number(upper), decimals).bound(number(value));
  const text = typeof got === "bigint" ? got.toString() : BigInt(got).toString();
  if (text !== fixed || was !== clamped) {
    wrong.push(`${value} in [${lower}, ${upper}] at ${decimals}: ${text} ${was} against ${fixed} ${clamped}`);
  }
}
if (wrong.length > 0) {
  console.log(`${wrong.length} of ${cases.length} cases disagree, first: ${wrong.slice(0, 5).join("; ")}`);
  process.exit(1);
}
console.log(`${cases.length} cases agree`);
