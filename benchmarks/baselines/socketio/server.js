// Baseline (b) for benchmarks/fanout.py: socket.io 4 + the Redis adapter, one room per queue.
// A socket joins the rooms named by its `room` query parameter (comma-separated: a screen that
// shows several queues); POST /press {"queue", "seq"} emits one "update" to that room through
// the adapter (which publishes it on Redis, so every process's sockets get it).
// WORKERS=N (default 1) runs N processes with Node's cluster module sharing one port (WebSocket
// transport only: no sticky sessions needed). Prints {"port": N} on stdout once all listen.
"use strict";
const cluster = require("cluster");
const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const WORKERS = Math.max(1, Number(process.env.WORKERS || 1));

async function serve() {
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);

  const server = http.createServer((req, res) => {
    if (req.method !== "POST" || req.url !== "/press") {
      res.writeHead(404).end();
      return;
    }
    let body = "";
    req.on("data", (chunk) => { body += chunk; });
    req.on("end", () => {
      const { queue, seq } = JSON.parse(body);
      io.to(queue).emit("update", { type: "update", queue, version: seq });
      res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    });
  });
  const io = new Server(server, {
    transports: ["websocket"],
    perMessageDeflate: false,
    httpCompression: false,
    serveClient: false,
    adapter: createAdapter(pub, sub),
  });
  io.on("connection", (socket) => {
    socket.join(String(socket.handshake.query.room).split(","));
  });
  server.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
    const port = server.address().port;
    if (cluster.isWorker) { process.send({ port }); }
    else { process.stdout.write(JSON.stringify({ port }) + "\n"); }
  });
  const stop = () => { io.close(); pub.quit(); sub.quit(); process.exit(0); };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

function primary() {
  // workers listening on port 0 share the one port the primary picks
  let ready = 0;
  for (let i = 0; i < WORKERS; i++) {
    cluster.fork().on("message", (msg) => {
      if (++ready === WORKERS) { process.stdout.write(JSON.stringify({ port: msg.port }) + "\n"); }
    });
  }
  const stop = () => {
    for (const w of Object.values(cluster.workers)) { w.kill("SIGTERM"); }
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

if (WORKERS > 1 && cluster.isPrimary) { primary(); }
else { serve().catch((err) => { console.error(err); process.exit(1); }); }
