// How a failure reads in the module's error text (the bank sees it; the partner in development
// runs). Apart from `world.js` so that it can be tested in Node.

import { QueryError } from "./index.js";

/** A failure as the bank reads it: the error and the function of the partner's that threw it
 * (the module is one bundle, so a line number would be the bundle's, not the partner's file's). */
export function errorText(e) {
  if (e instanceof QueryError) return e.message;
  const name = e?.name ?? "Error";
  const message = e?.message ?? String(e);
  // SpiderMonkey's frames read `function@file:line:column`, innermost first.
  const frame = String(e?.stack ?? "")
    .split("\n")
    .map((l) => l.trim())
    .find((l) => /^[^@\s]+@/.test(l));
  return frame ? `${name}: ${message} (in ${frame.split("@")[0]})` : `${name}: ${message}`;
}
