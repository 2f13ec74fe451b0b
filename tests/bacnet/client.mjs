// An independent BACnet client (@bacnet-js/client) driven by the Python tests.
//
//   node client.mjs <local udp port> [<local address>, 127.0.0.1 by default]
//
// Reads one JSON request per line on stdin, writes one JSON answer per line on
// stdout ({"id": ..., "ok": true, "result": ...} or {"id": ..., "ok": false,
// "error": "..."}). Run with TZ=UTC: the library encodes dates in local time.
//
// Requests (target = {"address": "127.0.0.1:PORT", "net": N, "adr": [MAC]}):
//   {"op": "whoIs", "target", "low", "high", "wait_ms"}   -> [{deviceId, vendorId, net, adr, address}]
//   {"op": "whoHas", "target", "name" | "objectId", "wait_ms"} -> [{deviceId, objectId, objectName, ...}]
//   {"op": "rp", "target", "type", "instance", "property", "index"}
//   {"op": "rpm", "target", "specs": [{"type", "instance", "properties": [id, ...]}]}
//   {"op": "wp", "target", "type", "instance", "property", "tag", "value", "priority"}
//   {"op": "timeSync" | "timeSyncUTC", "target", "iso"}
//   {"op": "enumNames", "enum": "EngineeringUnits"}       -> {"<value>": "<library's name>"}
//   {"op": "loop", "jobs": [...], "count", "rate"}   (benchmark: sequential RP/RPM, latencies)
import readline from 'node:readline';
import bacnetPackage from '@bacnet-js/client';
import baNpdu from '@bacnet-js/client/dist/lib/npdu.js';
import baApdu from '@bacnet-js/client/dist/lib/apdu.js';
import whoHasModule from '@bacnet-js/client/dist/lib/services/WhoHas.js';
import baEnum from '@bacnet-js/client/dist/lib/enum.js';

const Bacnet = bacnetPackage.default;        // CommonJS package: the client class is `default`
const WhoHas = whoHasModule.default;

const port = Number(process.argv[2]);
const client = new Bacnet({ port, interface: process.argv[3] || '127.0.0.1', apduTimeout: 4000, reuseAddr: false });
client.on('error', (err) => process.stderr.write(`client error: ${err.message}\n`));

const iAms = [];
const iHaves = [];
client.on('iAm', (msg) => iAms.push({
  deviceId: msg.payload.deviceId, vendorId: msg.payload.vendorId, maxApdu: msg.payload.maxApdu,
  segmentation: msg.payload.segmentation, address: msg.header.sender.address,
  net: msg.header.sender.net ?? null, adr: msg.header.sender.adr ?? null,
}));
client.on('iHave', (msg) => iHaves.push({
  deviceId: msg.payload.deviceId, objectId: msg.payload.objectId, objectName: msg.payload.objectName,
  address: msg.header.sender.address, net: msg.header.sender.net ?? null, adr: msg.header.sender.adr ?? null,
}));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const objectId = (req) => ({ type: req.type, instance: req.instance });

function plain(value) {
  // Buffers, bit strings and dates as JSON-friendly values.
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return [...value];
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = plain(v);
    return out;
  }
  return value;
}

function sendWhoHas(target, req) {
  const buffer = { buffer: Buffer.alloc(1482), offset: 4 };
  baNpdu.encode(buffer, 0, target, null, 0xff);          // hop count 255: the router forwards it
  baApdu.encodeUnconfirmedServiceRequest(buffer, 0x10, 7);
  const low = req.low ?? -1;
  const high = req.high ?? -1;
  if (req.name !== undefined) {
    WhoHas.encode(buffer, low, high, undefined, req.name);
  } else {
    WhoHas.encode(buffer, low, high, req.objectId, undefined);
  }
  client.sendBvlc(target, buffer);
}

const ops = {
  async whoIs(req) {
    iAms.length = 0;
    const options = {};
    if (req.low !== undefined) { options.lowLimit = req.low; options.highLimit = req.high; }
    client.whoIs(req.target, options);
    await sleep(req.wait_ms ?? 800);
    return iAms.slice();
  },
  async whoHas(req) {
    iHaves.length = 0;
    sendWhoHas(req.target, req);
    await sleep(req.wait_ms ?? 800);
    return iHaves.slice();
  },
  async rp(req) {
    const options = req.index !== undefined ? { arrayIndex: req.index } : {};
    return client.readProperty(req.target, objectId(req), req.property, options);
  },
  async rpm(req) {
    const specs = req.specs.map((s) => ({
      objectId: { type: s.type, instance: s.instance },
      properties: s.properties.map((id) => ({ id, index: 0xFFFFFFFF })),
    }));
    return client.readPropertyMultiple(req.target, specs);
  },
  async loop(req) {
    // Benchmark helper: `count` requests back to back (or `rate` per second), cycling over `jobs`
    // ({target, specs} for RPM, {target, type, instance, property} for RP); latencies in ms.
    const jobs = req.jobs.map((job) => ({
      target: job.target,
      rp: job.specs === undefined ? job : null,
      specs: job.specs === undefined ? null : job.specs.map((s) => ({
        objectId: { type: s.type, instance: s.instance },
        properties: s.properties.map((id) => ({ id, index: 0xFFFFFFFF })),
      })),
    }));
    const latencies = [];
    let errors = 0;
    const started = process.hrtime.bigint();
    for (let i = 0; i < req.count; i += 1) {
      const job = jobs[i % jobs.length];
      if (req.rate) {                      // paced: request i is due at i / rate seconds
        const due = started + BigInt(Math.round((i / req.rate) * 1e9));
        const now = process.hrtime.bigint();
        if (due > now) await sleep(Number(due - now) / 1e6);
      }
      const t0 = process.hrtime.bigint();
      try {
        if (job.specs) await client.readPropertyMultiple(job.target, job.specs);
        else await client.readProperty(job.target, objectId(job.rp), job.rp.property);
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      } catch (err) {
        errors += 1;
      }
    }
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    return { latencies, errors, elapsed };
  },
  async wp(req) {
    const options = req.priority !== undefined ? { priority: req.priority } : {};
    await client.writeProperty(req.target, objectId(req), req.property,
      [{ type: req.tag, value: req.value }], options);
    return null;
  },
  async timeSync(req) {
    client.timeSync(req.target, new Date(req.iso));
    await sleep(req.wait_ms ?? 200);
    return null;
  },
  async timeSyncUTC(req) {
    client.timeSyncUTC(req.target, new Date(req.iso));
    await sleep(req.wait_ms ?? 200);
    return null;
  },
  async enumNames(req) {
    // The library's own table of an ASHRAE 135 enumeration (a second source besides bacpypes3).
    const table = baEnum[req.enum];
    if (table === undefined) throw new Error(`no enumeration ${req.enum}`);
    return Object.fromEntries(Object.entries(table).filter(([key]) => /^\d+$/.test(key)));
  },
};

const lines = readline.createInterface({ input: process.stdin });
client.on('listening', () => process.stdout.write(JSON.stringify({ ready: true }) + '\n'));
for await (const line of lines) {
  if (!line.trim()) continue;
  const req = JSON.parse(line);
  if (req.op === 'quit') break;
  try {
    const result = await ops[req.op](req);
    process.stdout.write(JSON.stringify({ id: req.id, ok: true, result: plain(result) }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ id: req.id, ok: false, error: String(err.message ?? err) }) + '\n');
  }
}
client.close();
