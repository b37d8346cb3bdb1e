#!/usr/bin/env node
// Compiles every contracts/src/*.sol with the solc pinned in package.json and
// writes one artifact per deployable contract to <ContractName>.json in
// quorum_node/contracts/, the package folder that ships them (package data, read
// with importlib.resources; see quorum_node/contracts/__init__.py).
//
//   node compile.js            writes ../quorum_node/contracts/
//   node compile.js OUT_DIR    writes OUT_DIR instead (the tests recompile
//                              into a temporary folder and compare bytes)
//
// Artifact format (JSON, keys sorted at every level, two-space indent, "\n" at
// the end, so that recompiling the same sources gives byte-identical files):
//   contractName       "SimpleStorage"
//   sourceFile         "src/SimpleStorage.sol", relative to contracts/
//   sourceSha256       hex sha256 of that file's bytes; the tests compare it
//                      with the file on disk to catch stale artifacts
//   abi                the contract's ABI, as solc gives it
//   bytecode           "0x..." creation code (constructor arguments go after it)
//   deployedBytecode   "0x..." runtime code, as it sits at the contract's address
//   methodIdentifiers  {"set(uint256)": "60fe47b1", ...}
//   compiler           {"version": "0.8.37+commit.f401782d",
//                       "evmVersion": "osaka",
//                       "optimizer": {"enabled": true, "runs": 200}}
// Interfaces and abstract contracts (empty bytecode) get no artifact.
//
// EVM version: solc's default (osaka for 0.8.37) is kept on purpose. Osaka
// differs from Prague, the newest fork py-evm 0.12.1b1 runs, only by the CLZ
// opcode (0x1e, EIP-7939), and solc 0.8.37 emits no CLZ for these sources;
// tests/test_contracts.py checks every committed deployedBytecode for 0x1e and
// runs the contracts on PragueVM. If a new source ever makes solc emit CLZ,
// set EVM_VERSION below to "prague" (and say so here).
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const EVM_VERSION = null; // null: solc's default; see the note above.
const OPTIMIZER = { enabled: true, runs: 200 };

const HERE = __dirname;
const SRC_DIR = path.join(HERE, "src");
const ARTIFACT_DIR = path.join(HERE, "..", "quorum_node", "contracts");

class CompileError extends Error {}

/** Standard-JSON input for all sources, keyed "src/<File>.sol". */
function buildInput(sourceFiles) {
  const sources = {};
  for (const file of sourceFiles) {
    sources[`src/${file}`] = { content: fs.readFileSync(path.join(SRC_DIR, file), "utf8") };
  }
  const settings = {
    optimizer: OPTIMIZER,
    outputSelection: {
      "*": {
        "*": ["abi", "metadata", "evm.bytecode.object", "evm.deployedBytecode.object",
          "evm.methodIdentifiers"],
      },
    },
  };
  if (EVM_VERSION !== null) settings.evmVersion = EVM_VERSION;
  return { language: "Solidity", sources, settings };
}

/** Imports resolve inside src/ only; nothing is fetched from elsewhere. */
function findImport(importPath) {
  const resolved = path.resolve(HERE, importPath);
  if (!resolved.startsWith(SRC_DIR + path.sep) || !fs.existsSync(resolved)) {
    return { error: `import ${importPath} is not a file under contracts/src` };
  }
  return { contents: fs.readFileSync(resolved, "utf8") };
}

/** JSON with object keys sorted at every depth; arrays keep their order. */
function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const sorted = {};
    for (const key of Object.keys(value).sort()) sorted[key] = sortKeys(value[key]);
    return sorted;
  }
  return value;
}

function sha256Hex(filePath) {
  return crypto.createHash("sha256").update(fs.readFileSync(filePath)).digest("hex");
}

function compile(outDir) {
  const sourceFiles = fs.readdirSync(SRC_DIR).filter((f) => f.endsWith(".sol")).sort();
  if (sourceFiles.length === 0) throw new CompileError(`no .sol files in ${SRC_DIR}`);

  const output = JSON.parse(
    solc.compile(JSON.stringify(buildInput(sourceFiles)), { import: findImport }),
  );
  const diagnostics = output.errors || [];
  for (const d of diagnostics) process.stderr.write(d.formattedMessage + "\n");
  if (diagnostics.some((d) => d.severity === "error")) {
    throw new CompileError("solc reported errors (above)");
  }

  const artifacts = new Map();
  for (const sourceKey of Object.keys(output.contracts).sort()) {
    for (const name of Object.keys(output.contracts[sourceKey]).sort()) {
      const contract = output.contracts[sourceKey][name];
      if (contract.evm.bytecode.object === "") continue; // interface or abstract
      if (artifacts.has(name)) {
        throw new CompileError(`contract ${name} is defined twice (${sourceKey} and ` +
          `${artifacts.get(name).sourceFile}); artifact names must be unique`);
      }
      const metadata = JSON.parse(contract.metadata);
      artifacts.set(name, {
        contractName: name,
        sourceFile: sourceKey,
        sourceSha256: sha256Hex(path.join(HERE, sourceKey)),
        abi: contract.abi,
        bytecode: "0x" + contract.evm.bytecode.object,
        deployedBytecode: "0x" + contract.evm.deployedBytecode.object,
        methodIdentifiers: contract.evm.methodIdentifiers,
        compiler: {
          version: metadata.compiler.version,
          // What solc actually used, so the default is recorded, not "null".
          evmVersion: metadata.settings.evmVersion,
          optimizer: OPTIMIZER,
        },
      });
    }
  }

  fs.mkdirSync(outDir, { recursive: true });
  // Artifacts of contracts that no longer exist would otherwise linger.
  for (const file of fs.readdirSync(outDir)) {
    if (file.endsWith(".json") && !artifacts.has(file.slice(0, -".json".length))) {
      fs.unlinkSync(path.join(outDir, file));
    }
  }
  for (const [name, artifact] of artifacts) {
    const text = JSON.stringify(sortKeys(artifact), null, 2) + "\n";
    fs.writeFileSync(path.join(outDir, `${name}.json`), text);
  }
  return [...artifacts.keys()];
}

function main() {
  const outDir = path.resolve(process.argv[2] || ARTIFACT_DIR);
  try {
    const names = compile(outDir);
    console.log(`solc ${solc.version()}: wrote ${names.length} artifacts to ` +
      `${path.relative(process.cwd(), outDir) || "."}: ${names.join(", ")}`);
  } catch (err) {
    if (!(err instanceof CompileError)) throw err;
    console.error(`compile.js: ${err.message}`);
    process.exit(1);
  }
}

main();
