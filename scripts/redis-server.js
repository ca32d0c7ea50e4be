// A private redis-server for the tests, the benchmark and the demo: a free
// loopback port, a temporary directory, no persistence; stopped by `stop()`.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const { once } = require('node:events');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

/** Whether the redis-server binary is installed. */
function redisAvailable() {
  const probe = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  return probe.status === 0;
}

/** A loopback port nothing listens on now. */
async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** Resolves once `port` accepts a connection; rejects if `child` exits first or after 10 s. */
function accepting(port, child) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 10_000;
    const onExit = (code) => reject(new Error(`redis-server exited with ${code} before accepting`));
    child.once('exit', onExit);
    const attempt = () => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        child.off('exit', onExit);
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`redis-server did not accept on ${port}`));
        else setTimeout(attempt, 10);
      });
    };
    attempt();
  });
}

/**
 * Starts redis-server (with `extra` arguments). The handle's `stop()` kills
 * it, `start()` runs it again on the same port (to test a server that goes
 * away and returns), and `close()` stops it and removes its directory.
 */
async function startRedis(extra = []) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gama-redis-'));
  const handle = {
    port,
    url: `redis://127.0.0.1:${port}`,
    child: null,
    async start() {
      const child = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra],
        { stdio: 'ignore' },
      );
      handle.child = child;
      await accepting(port, child);
    },
    async stop() {
      const child = handle.child;
      handle.child = null;
      if (!child || child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
    async close() {
      await handle.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await handle.start();
  return handle;
}

/** Resolves once `redis-cli -p port CLUSTER INFO` says every slot is served; rejects after 10 s. */
async function clusterReady(port) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const info = spawnSync('redis-cli', ['-p', String(port), 'CLUSTER', 'INFO'], { encoding: 'utf8' });
    if (info.stdout?.includes('cluster_state:ok')) return;
    if (Date.now() > deadline) throw new Error(`the cluster node on ${port} did not reach cluster_state:ok`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Starts a Redis Cluster of three primaries (no replicas) with
 * `redis-cli --cluster create`; `url` names its first node, and `close()`
 * stops every node.
 */
async function startCluster() {
  const mode = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'];
  const nodes = [];
  const close = () => Promise.all(nodes.map((n) => n.close()));
  try {
    for (let i = 0; i < 3; i++) nodes.push(await startRedis(mode));
    const created = spawnSync(
      'redis-cli',
      ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'],
      { encoding: 'utf8' },
    );
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stderr || created.stdout}`);
    for (const n of nodes) await clusterReady(n.port);
  } catch (err) {
    await close();
    throw err;
  }
  return { url: nodes[0].url, nodes, close };
}

module.exports = { redisAvailable, startRedis, startCluster, freePort };
