// Names each function of a wasm after its own code, so that wasm-opt's
// `--reorder-functions-by-name` (scripts/build-web.sh runs it next, and
// drops the names again) puts functions whose code begins alike side by
// side: gzip then finds each one's likeness to its neighbour within its
// window, as it would not with the functions in the linker's order.
// Measured on the bundle: ~1.7 KB gzipped less.
//
//   node scripts/wasm-order.cjs IN.wasm OUT.wasm
//
// The name of a function is the hex of the first 64 bytes of its body
// (locals, then code) and its index, which keeps names unique. Only the
// `name` custom section is written (any old one is replaced); the code is
// untouched, so a wasm this script cannot read stops the build.
'use strict';
const fs = require('fs');

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
            bodies.push(wasm.subarray(body, body + Math.min(len, 64)));
            p = body + len;
        }
        if (p !== end) fail('the code section does not add up');
    }
    at = end;
}
if (!bodies) fail(`${inFile} has no code`);

const entries = [uleb(bodies.length)];
bodies.forEach((body, i) => {
    const index = imported + i;
    const label = Buffer.from(`${body.toString('hex')}#${index}`);
    entries.push(uleb(index), uleb(label.length), label);
});
const names = Buffer.concat(entries);
const payload = Buffer.concat([uleb(4), Buffer.from('name'), Buffer.from([1]), uleb(names.length), names]);
const section = Buffer.concat([Buffer.from([0]), uleb(payload.length), payload]);
fs.writeFileSync(outFile, Buffer.concat([wasm.subarray(0, 8), ...kept, section]));
