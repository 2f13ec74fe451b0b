#!/usr/bin/env node
// Run a Python test script under the MicroPython WebAssembly port (Node.js).
//
// Usage:
//   node run_mp.mjs --root <repo_root> --module <relpath> [--module <relpath> ...]
//                   [--heapsize <bytes|Nk|Nm>] <test_script.py>
//
// Each --module file (path relative to --root) is copied into the MicroPython
// virtual filesystem under VROOT with the same relative path, and VROOT is put
// on sys.path so that e.g. "core/modbus_rtu.py" is importable as
// core.modbus_rtu.  The test script is then executed as __main__.
//
// Exit status: 0 if the script ran to the end (or called sys.exit(0)),
// 1 on an uncaught exception (MicroPython traceback printed to stderr),
// 2 on usage / harness errors.  No network access is needed at run time.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MP_MJS = path.join(
  HERE,
  "node_modules",
  "@micropython",
  "micropython-webassembly-pyscript",
  "micropython.mjs",
);
const VROOT = "/repo"; // root of the project tree inside the MicroPython VFS

function usage(msg) {
  if (msg) process.stderr.write(`run_mp.mjs: ${msg}\n`);
  process.stderr.write(
    "usage: node run_mp.mjs --root <repo_root> --module <relpath> " +
      "[--module <relpath> ...] [--heapsize N[k|m]] <test_script.py>\n",
  );
  process.exit(2);
}

function parseSize(s) {
  const m = /^(\d+)([kKmM]?)$/.exec(s);
  if (!m) usage(`bad --heapsize: ${s}`);
  const mult = { "": 1, k: 1024, m: 1024 * 1024 }[m[2].toLowerCase()];
  return parseInt(m[1], 10) * mult;
}

function parseArgs(argv) {
  const opts = { root: null, modules: [], script: null, heapsize: 8 * 1024 * 1024 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage(`missing value for ${a}`);
      return argv[++i];
    };
    if (a === "--root") opts.root = next();
    else if (a === "--module") opts.modules.push(next());
    else if (a === "--heapsize") opts.heapsize = parseSize(next());
    else if (a === "-h" || a === "--help") usage();
    else if (a.startsWith("--")) usage(`unknown option ${a}`);
    else if (opts.script === null) opts.script = a;
    else usage(`unexpected argument ${a}`);
  }
  if (!opts.root) usage("--root is required");
  if (!opts.script) usage("test script is required");
  return opts;
}

// Python string literal for an arbitrary JS string (JSON escapes are valid
// Python escapes for the characters JSON.stringify emits).
const pyStr = (s) => JSON.stringify(s);

function mkdirp(FS, dir) {
  if (dir && dir !== "/") FS.mkdirTree(dir);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const root = path.resolve(opts.root);
  const scriptPath = path.resolve(opts.script);

  if (!fs.existsSync(MP_MJS)) {
    process.stderr.write(
      `run_mp.mjs: MicroPython package not installed (${MP_MJS} missing).\n` +
        "Run `npm ci --prefix tests/micropython` (or `make test`).\n",
    );
    process.exit(2);
  }

  // Read every input up front so harness errors are reported before MicroPython starts.
  const files = [];
  for (const rel of opts.modules) {
    const norm = path.posix.normalize(rel.split(path.sep).join("/"));
    if (path.posix.isAbsolute(norm) || norm.startsWith("..")) {
      usage(`--module must be a path relative to --root: ${rel}`);
    }
    const src = path.join(root, norm);
    if (!fs.existsSync(src)) {
      process.stderr.write(`run_mp.mjs: module file not found: ${src}\n`);
      process.exit(2);
    }
    files.push([`${VROOT}/${norm}`, fs.readFileSync(src)]);
  }
  if (!fs.existsSync(scriptPath)) {
    process.stderr.write(`run_mp.mjs: test script not found: ${scriptPath}\n`);
    process.exit(2);
  }
  // Place the script at its repo-relative location if it lives inside root,
  // otherwise in a scratch directory of its own.
  const relScript = path.relative(root, scriptPath);
  const vScript =
    relScript && !relScript.startsWith("..") && !path.isAbsolute(relScript)
      ? `${VROOT}/${relScript.split(path.sep).join("/")}`
      : `/__script__/${path.basename(scriptPath)}`;
  files.push([vScript, fs.readFileSync(scriptPath)]);

  // Loading the module defines globalThis.loadMicroPython (it has no ES exports).
  await import(MP_MJS);
  const loadMicroPython = globalThis.loadMicroPython;
  if (typeof loadMicroPython !== "function") {
    process.stderr.write("run_mp.mjs: loadMicroPython not found in package\n");
    process.exit(2);
  }

  // Byte-wise stdout/stderr callbacks (linebuffer: false) so that partial
  // lines and non-UTF-8 output are passed through unchanged; we batch them.
  const mkSink = (stream) => {
    let buf = [];
    const flush = () => {
      if (buf.length) {
        stream.write(Buffer.from(buf));
        buf = [];
      }
    };
    const put = (bytes) => {
      for (const b of bytes) {
        buf.push(b);
        if (b === 10 || buf.length >= 8192) flush();
      }
    };
    return { put, flush };
  };
  const out = mkSink(process.stdout);
  const err = mkSink(process.stderr);

  const mp = await loadMicroPython({
    heapsize: opts.heapsize,
    linebuffer: false,
    stdout: out.put,
    stderr: err.put,
  });
  const FS = mp.FS;

  mkdirp(FS, VROOT);
  for (const [vpath, data] of files) {
    mkdirp(FS, path.posix.dirname(vpath));
    FS.writeFile(vpath, data);
  }
  FS.chdir(VROOT);

  // Mirror CPython `PYTHONPATH=<root> python <script>`: sys.path[0] is the
  // script's directory, followed by the project root.  Harness-only names are
  // removed from __main__ before the script runs.
  const vScriptDir = path.posix.dirname(vScript);
  const driver = [
    "import sys as _mp_sys",
    `for _mp_p in (${pyStr(VROOT)}, ${pyStr(vScriptDir)}):`,
    "    if _mp_p in _mp_sys.path:",
    "        _mp_sys.path.remove(_mp_p)",
    "    _mp_sys.path.insert(0, _mp_p)",
    `_mp_sys.argv[:] = [${pyStr(vScript)}]`,
    `with open(${pyStr(vScript)}) as _mp_f:`,
    "    _mp_code = compile(_mp_f.read(), " + pyStr(vScript) + ", 'exec')",
    "del _mp_sys, _mp_p, _mp_f",
    `__file__ = ${pyStr(vScript)}`,
    "exec(_mp_code)",
    "",
  ].join("\n");

  let status = 0;
  try {
    mp.runPython(driver);
  } catch (e) {
    out.flush();
    if (e && e.name === "PythonError") {
      if (e.type === "SystemExit") {
        // "SystemExit" / "SystemExit: 0" / "SystemExit: None" mean success.
        const last = String(e.message).trim().split("\n").pop();
        const m = /^SystemExit(?::\s*(.*))?$/.exec(last);
        const arg = m ? (m[1] ?? "").trim() : last;
        if (arg === "" || arg === "0" || arg === "None") status = 0;
        else if (/^-?\d+$/.test(arg)) status = (parseInt(arg, 10) & 0xff) || 1;
        else {
          err.put(Buffer.from(arg + "\n"));
          status = 1;
        }
      } else {
        err.put(Buffer.from(String(e.message).replace(/\n?$/, "\n")));
        status = 1;
      }
    } else {
      err.put(Buffer.from(`run_mp.mjs: internal error: ${e && e.stack ? e.stack : e}\n`));
      status = 2;
    }
  }
  out.flush();
  err.flush();
  process.exitCode = status;
}

main().catch((e) => {
  process.stderr.write(`run_mp.mjs: internal error: ${e && e.stack ? e.stack : e}\n`);
  process.exitCode = 2;
});
