// What an ethers v6 user does against a quorum-node; driven by tests/node/test_flows_ethers.py.
//
// usage: node flow.mjs <http_url> <ws_url> <private_key_hex> <artifacts_dir>
// Prints one JSON line of results on stdout; any failure exits non-zero with the error
// on stderr.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ethers } from "ethers";

const [httpUrl, wsUrl, privateKey, artifactsDir] = process.argv.slice(2);
if (!artifactsDir) {
  console.error("usage: node flow.mjs <http_url> <ws_url> <private_key_hex> <artifacts_dir>");
  process.exit(64);
}
// A hang fails the run instead of waiting for the caller's timeout.
setTimeout(() => {
  console.error("flow.mjs: timed out");
  process.exit(3);
}, 60_000).unref();

const artifact = (name) => JSON.parse(readFileSync(join(artifactsDir, `${name}.json`), "utf8"));

function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function main() {
  // JsonRpcProvider batches concurrent requests by default; poll fast for receipts.
  // cacheTimeout -1: ethers otherwise answers an identical request made within 250 ms
  // from its own cache, so with 50 ms blocks the nonce read for the second send of a
  // quick pair is the stale one read for the first ("nonce has already been used").
  const provider = new ethers.JsonRpcProvider(httpUrl, undefined, {
    pollingInterval: 50,
    cacheTimeout: -1,
  });
  const wallet = new ethers.Wallet(privateKey, provider);
  const nodeSigner = await provider.getSigner(); // eth_accounts[0], signs on the node
  const results = {};

  const network = await provider.getNetwork();
  results.chainId = Number(network.chainId);
  results.walletAddress = wallet.address;
  results.nodeAccount = await nodeSigner.getAddress();

  // concurrent reads: sent as one JSON-RPC batch
  const [blockNumber, balance, latest] = await Promise.all([
    provider.getBlockNumber(),
    provider.getBalance(wallet.address),
    provider.getBlock("latest"),
  ]);
  results.blockNumber = blockNumber;
  results.walletBalancePositive = balance > 0n;
  results.latestHasHash = typeof latest.hash === "string" && latest.hash.length === 66;

  // SimpleStorage, deployed and driven by the local wallet
  const storageSpec = artifact("SimpleStorage");
  const storageFactory = new ethers.ContractFactory(storageSpec.abi, storageSpec.bytecode, wallet);
  const storage = await storageFactory.deploy(42);
  const deployReceipt = await storage.deploymentTransaction().wait();
  await storage.waitForDeployment();
  results.storageAddress = await storage.getAddress();
  results.deployStatus = deployReceipt.status;
  results.deployBlock = deployReceipt.blockNumber;
  results.initialValue = Number(await storage.get());

  const setReceipt = await (await storage.set(7)).wait();
  const stored = setReceipt.logs.map((log) => storage.interface.parseLog(log)).find(Boolean);
  results.setStatus = setReceipt.status;
  results.setTxHash = setReceipt.hash;
  results.setEvent = { name: stored.name, by: stored.args.by, value: Number(stored.args.value) };
  results.valueAfterSet = Number(await storage.get());

  const queried = await storage.queryFilter(storage.filters.Stored(), deployReceipt.blockNumber);
  results.queriedValues = queried.map((event) => Number(event.args.value));
  results.queriedBy = [...new Set(queried.map((event) => event.args.by))];

  // Token, deployed by the node's own account (eth_sendTransaction)
  const tokenSpec = artifact("Token");
  const tokenFactory = new ethers.ContractFactory(tokenSpec.abi, tokenSpec.bytecode, nodeSigner);
  const token = await tokenFactory.deploy("Test", "TST", ethers.parseUnits("1000", 18));
  await token.waitForDeployment();
  results.tokenAddress = await token.getAddress();
  const transferReceipt = await (await token.transfer(wallet.address, ethers.parseUnits("5", 18))).wait();
  const transfer = transferReceipt.logs.map((log) => token.interface.parseLog(log)).find(Boolean);
  results.transferEvent = {
    from: transfer.args.from,
    to: transfer.args.to,
    value: transfer.args.value.toString(),
  };
  results.walletTokenBalance = (await token.balanceOf(wallet.address)).toString();

  // a revert reason, from a call and from a send (estimateGas fails first)
  const poor = ethers.Wallet.createRandom().connect(provider);
  try {
    await token.connect(poor).transfer.staticCall(wallet.address, 1n);
    results.callRevert = null;
  } catch (error) {
    results.callRevert = { code: error.code, reason: error.reason };
  }
  try {
    await token.connect(wallet).transfer(results.nodeAccount, ethers.parseUnits("6", 18));
    results.sendRevert = null;
  } catch (error) {
    results.sendRevert = { code: error.code, reason: error.reason };
  }

  // WebSocketProvider: a "block" event for a new block
  const ws = new ethers.WebSocketProvider(wsUrl);
  try {
    const startBlock = await ws.getBlockNumber();
    const seen = new Promise((resolve) => {
      ws.on("block", (number) => {
        if (number > startBlock) resolve(number);
      });
    });
    // ethers subscribes asynchronously: keep making blocks until one is seen
    let seenBlock = null;
    seen.then((number) => { seenBlock = number; });
    const deadline = Date.now() + 20_000;
    while (seenBlock === null && Date.now() < deadline) {
      await (await storage.set(8)).wait();
      await within(1_000, seen, "a block event").catch(() => {});
    }
    if (seenBlock === null) throw new Error("no WebSocket block event within 20 s");
    results.wsBlock = seenBlock;
    results.wsBlockAboveStart = seenBlock > startBlock;
  } finally {
    await ws.destroy();
  }

  results.finalValue = Number(await storage.get());
  provider.destroy();
  return results;
}

main().then(
  (results) => {
    console.log(JSON.stringify(results));
    process.exit(0);
  },
  (error) => {
    console.error(error && error.stack ? error.stack : error);
    process.exit(1);
  },
);
