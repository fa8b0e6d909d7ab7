// The benchmark peer: the subset of hubbub's protocol that `hubbub-bench`
// speaks, on Bun's built-in uWebSockets server, so fan-out and memory
// figures can be set side by side with a well-known fast server on the same
// machine in the same run. Not a chat server: no storage (rooms live in
// memory, like hubbub's `--store memory`), no limits, no validation beyond
// what the bench needs.
//
//   hello -> welcome
//   join  -> presence (the announced members), then `joined`/`left` notices
//            coalesced per room at most every 100 ms, as hubbub does
//   send  -> `message` to every member, the sender included (serialized
//            once, one uWS topic publish), then the sender's `ack` with seq
//   ping  -> pong
//
// Slow consumers: a socket with more than 1 MiB queued is closed, as
// hubbub's default `--queue-bytes` does (uWS's own default would buffer
// 16 MiB per socket and then drop messages silently).
//
// Usage: bun bench/peer/bun-server.js [--listen 127.0.0.1:0]
// Prints "bun-peer listening on http://ADDR" as its first line.

const PRESENCE_INTERVAL_MS = 100;
const QUEUE_BYTES = 1 << 20;

const at = process.argv.indexOf("--listen");
const [host, port] = (at > 0 ? process.argv[at + 1] : "127.0.0.1:8080").split(":");

/** Room name -> { seq, members: Map<ws, name>, announced: Set<name>, snapshot, timer, last } */
const rooms = new Map();

function room(name) {
  let r = rooms.get(name);
  if (!r) {
    r = { seq: 0, members: new Map(), announced: new Set(), snapshot: null, timer: null, last: 0 };
    rooms.set(name, r);
  }
  return r;
}

// Announces the difference between members and announced names, once.
function flush(name, r) {
  r.timer = null;
  r.last = Date.now();
  const online = new Set(r.members.values());
  const joined = [...online].filter((u) => !r.announced.has(u));
  const left = [...r.announced].filter((u) => !online.has(u));
  r.announced = online;
  r.snapshot = null;
  if (joined.length) server.publish(name, JSON.stringify({ type: "joined", room: name, users: joined.sort() }));
  if (left.length) server.publish(name, JSON.stringify({ type: "left", room: name, users: left.sort() }));
}

function changed(name, r) {
  if (r.timer) return;
  const wait = Math.max(0, r.last + PRESENCE_INTERVAL_MS - Date.now());
  r.timer = setTimeout(() => flush(name, r), wait);
}

const handlers = {
  hello(ws, m) {
    ws.data.name = m.name;
    ws.send(JSON.stringify({ type: "welcome", user: m.name, protocol: 1 }));
  },
  join(ws, m) {
    const r = room(m.room);
    r.snapshot ??= JSON.stringify({ type: "presence", room: m.room, users: [...r.announced].sort() });
    ws.send(r.snapshot);
    if (r.members.has(ws)) return;
    ws.subscribe(m.room);
    ws.data.rooms.push(m.room);
    r.members.set(ws, ws.data.name);
    changed(m.room, r);
  },
  send(ws, m) {
    const r = rooms.get(m.room);
    if (!r || !r.members.has(ws)) {
      ws.send(JSON.stringify({ type: "error", code: "not_in_room", message: "join first", room: m.room }));
      return;
    }
    const seq = ++r.seq;
    const frame = { type: "message", room: m.room, seq, from: ws.data.name, text: m.text, sent_at: Date.now() };
    server.publish(m.room, JSON.stringify(frame));
    ws.send(JSON.stringify({ type: "ack", client_id: m.client_id, room: m.room, seq }));
  },
  ping(ws, m) {
    ws.send(JSON.stringify({ type: "pong", id: m.id }));
  },
};

const server = Bun.serve({
  hostname: host,
  port: Number(port),
  fetch(req, server) {
    if (new URL(req.url).pathname === "/ws" && server.upgrade(req, { data: { name: null, rooms: [] } })) return;
    return new Response("not found", { status: 404 });
  },
  websocket: {
    perMessageDeflate: false,
    backpressureLimit: QUEUE_BYTES,
    closeOnBackpressureLimit: true,
    idleTimeout: 60,
    message(ws, text) {
      let m;
      try {
        m = JSON.parse(text);
      } catch {
        return ws.send(JSON.stringify({ type: "error", code: "bad_json", message: "not JSON" }));
      }
      const handler = handlers[m.type];
      if (!handler) return ws.send(JSON.stringify({ type: "error", code: "unknown_type", message: String(m.type) }));
      if (m.type !== "hello" && m.type !== "ping" && ws.data.name === null) {
        return ws.send(JSON.stringify({ type: "error", code: "hello_required", message: "say hello first" }));
      }
      handler(ws, m);
    },
    close(ws) {
      for (const name of ws.data.rooms) {
        const r = rooms.get(name);
        r.members.delete(ws);
        changed(name, r);
      }
    },
  },
});

console.log(`bun-peer listening on http://${server.hostname}:${server.port}`);
