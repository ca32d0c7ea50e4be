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
 * Starts redis-server. The handle's `stop()` kills it, `start()` runs it
 * again on the same port (to test a server that goes away and returns),
 * and `close()` stops it and removes its directory.
 */
async function startRedis() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gama-redis-'));
  const handle = {
    port,
    url: `redis://127.0.0.1:${port}`,
    child: null,
    async start() {
      const child = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
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

module.exports = { redisAvailable, startRedis, freePort };
