/** @module Assertions shared by several test files. */
import assert from "node:assert/strict";

/** Awaits `p`, asserts it rejects with an Error whose message matches every pattern; returns the message. */
export async function rejects(p: Promise<unknown>, ...patterns: RegExp[]): Promise<string> {
  let message = "";
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof Error, `not an Error: ${e}`);
    message = e.message;
    return true;
  });
  for (const re of patterns) assert.match(message, re);
  return message;
}
