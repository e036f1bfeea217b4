// Shared by the Node test drivers (tests/mcp/sdk_test.mjs, tests/ui/ui_test.mjs):
// their command line, the processes they start (killed by cleanup()) and a
// scratch folder removed with them.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const DEADLINE_MS = 20000;

// `--key value` pairs into an object; throws naming the first of `required` missing.
export function parseArgs(argv, required) {
  const args = {};
  for (let i = 2; i < argv.length; i += 2) {
    args[argv[i].replace(/^--/, "")] = argv[i + 1];
  }
  for (const key of required) {
    if (!args[key]) {
      throw new Error(`missing --${key}`);
    }
  }
  return args;
}

// The processes a driver starts and its scratch folder (named after `prefix`).
export function processes(prefix) {
  const children = new Set();
  const scratch = mkdtempSync(join(tmpdir(), prefix));

  function cleanup() {
    for (const child of children) {
      child.kill("SIGKILL");
    }
    rmSync(scratch, { recursive: true, force: true });
  }

  // Spawns `command` and resolves with the first match of `pattern` in its
  // `stream` (with the child), or rejects when it exits first or at the deadline.
  function spawnUntil(command, args, options, stream, pattern) {
    return new Promise((resolve, reject) => {
      const child = spawn(command, args, options);
      children.add(child);
      let text = "";
      const timer = setTimeout(() => reject(new Error(`${command}: not ready:\n${text}`)), DEADLINE_MS);
      child[stream].on("data", (chunk) => {
        text += chunk;
        const match = text.match(pattern);
        if (match) {
          clearTimeout(timer);
          resolve({ child, match });
        }
      });
      child.on("exit", (code) => {
        children.delete(child);
        clearTimeout(timer);
        reject(new Error(`${command} exited with ${code}:\n${text}`));
      });
    });
  }

  return { children, scratch, cleanup, spawnUntil };
}
