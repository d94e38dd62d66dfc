// Baseline (b) for benchmarks/fanout.py: socket.io 4 + the Redis adapter, one room per queue.
// A socket joins the room named by its `room` query parameter; POST /press {"queue", "seq"}
// emits one "update" to that room through the adapter (which publishes it on Redis).
// Prints {"port": N} on stdout once listening.
"use strict";
const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

async function main() {
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
    socket.join(String(socket.handshake.query.room));
  });
  server.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
    process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
  });
  const stop = () => { io.close(); pub.quit(); sub.quit(); process.exit(0); };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => { console.error(err); process.exit(1); });
