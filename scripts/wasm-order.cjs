// Orders a wasm's functions for gzip: names each function after its
// place in a new order, so that wasm-opt's `--reorder-functions-by-name`
// (scripts/build-web.sh runs it next, and drops the names again) puts
// functions whose code is alike side by side, where gzip finds each one's
// likeness to its neighbours within its window, as it would not with the
// functions in the linker's order.
//
//   node scripts/wasm-order.cjs IN.wasm OUT.wasm
//
// The order: the functions sorted by the first 64 bytes of their bodies
// (locals, then code); then, from the first, each next function is the
// one most like the last placed (the share of 4-byte runs of code the two
// have in common), among the next WINDOW not yet placed in that sorted
// order. Only the `name` custom section is written (any old one is
// replaced); the code is untouched, so a wasm this script cannot read
// stops the build.
'use strict';
const fs = require('fs');

// How far ahead in the sorted order the next function is looked for: of
// 1, 30, 100, 200, 300, 600 and all, 100 made the smallest bundle.
const WINDOW = 100;

const [inFile, outFile] = process.argv.slice(2);
if (!inFile || !outFile) {
    console.error('usage: node scripts/wasm-order.cjs IN.wasm OUT.wasm');
    process.exit(2);
}
const wasm = fs.readFileSync(inFile);
const fail = (why) => {
    console.error(`wasm-order: ${why}`);
    process.exit(1);
};
if (wasm.readUInt32LE(0) !== 0x6d736100 || wasm.readUInt32LE(4) !== 1) {
    fail(`${inFile} is not a wasm module`);
}

// Unsigned LEB128 at `at`: [value, next offset].
const leb = (at) => {
    let value = 0;
    let shift = 0;
    for (;;) {
        const byte = wasm[at++];
        value += (byte & 0x7f) * 2 ** shift;
        shift += 7;
        if (byte < 0x80) return [value, at];
    }
};
const uleb = (n) => {
    const out = [];
    do {
        let byte = n & 0x7f;
        n = Math.floor(n / 128);
        if (n) byte |= 0x80;
        out.push(byte);
    } while (n);
    return Buffer.from(out);
};
// A name (byte length, then the bytes) at `at`: [string, next offset].
const name = (at) => {
    const [len, start] = leb(at);
    return [wasm.toString('utf8', start, start + len), start + len];
};
// A limits field at `at` (flags, min, max if flagged): next offset.
const limits = (at) => {
    const flags = wasm[at];
    let next = leb(at + 1)[1];
    if (flags & 1) next = leb(next)[1];
    return next;
};

const kept = [];
let imported = 0;
let bodies = null;
for (let at = 8; at < wasm.length; ) {
    const id = wasm[at];
    const [size, start] = leb(at + 1);
    const end = start + size;
    if (id === 0 && name(start)[0] === 'name') {
        at = end;
        continue;
    }
    kept.push(wasm.subarray(at, end));
    if (id === 2) {
        let [count, p] = leb(start);
        for (; count > 0; count--) {
            p = name(p)[1];
            p = name(p)[1];
            const kind = wasm[p++];
            if (kind === 0) {
                imported++;
                p = leb(p)[1];
            } else if (kind === 1) {
                p = limits(p + 1);
            } else if (kind === 2) {
                p = limits(p);
            } else if (kind === 3) {
                p += 2;
            } else if (kind === 4) {
                p = leb(p + 1)[1];
            } else {
                fail(`import kind ${kind} unknown`);
            }
        }
    } else if (id === 10) {
        bodies = [];
        let [count, p] = leb(start);
        for (; count > 0; count--) {
            const [len, body] = leb(p);
            bodies.push(wasm.subarray(body, body + len));
            p = body + len;
        }
        if (p !== end) fail('the code section does not add up');
    }
    at = end;
}
if (!bodies) fail(`${inFile} has no code`);

// The 4-byte runs of a body's code, as numbers (a body shorter than 4
// bytes is one run of what it has).
const runs = (body) => {
    const set = new Set();
    if (body.length < 4) set.add(body.toString('hex'));
    for (let i = 0; i + 4 <= body.length; i++) set.add(body.readUInt32LE(i));
    return set;
};
const alike = (a, b) => {
    let common = 0;
    for (const run of a) if (b.has(run)) common++;
    return common / (a.size + b.size - common || 1);
};
const left = bodies
    .map((body, i) => i)
    .sort((a, b) => Buffer.compare(bodies[a].subarray(0, 64), bodies[b].subarray(0, 64)) || a - b);
const shingles = bodies.map(runs);
const order = [left.shift()];
while (left.length) {
    const last = shingles[order[order.length - 1]];
    let best = 0;
    let bestScore = -1;
    for (let k = 0; k < Math.min(WINDOW, left.length); k++) {
        const score = alike(last, shingles[left[k]]);
        if (score > bestScore) {
            bestScore = score;
            best = k;
        }
    }
    order.push(left.splice(best, 1)[0]);
}
const place = new Array(bodies.length);
order.forEach((i, at) => {
    place[i] = at;
});

const entries = [uleb(bodies.length)];
bodies.forEach((body, i) => {
    const label = Buffer.from(String(place[i]).padStart(6, '0'));
    entries.push(uleb(imported + i), uleb(label.length), label);
});
const names = Buffer.concat(entries);
const payload = Buffer.concat([uleb(4), Buffer.from('name'), Buffer.from([1]), uleb(names.length), names]);
const section = Buffer.concat([Buffer.from([0]), uleb(payload.length), payload]);
fs.writeFileSync(outFile, Buffer.concat([wasm.subarray(0, 8), ...kept, section]));
