// Renames, in wasm-bindgen's JS glue, the wasm's imports, exports and
// import module after `wasm-opt --minify-imports-and-exports-and-modules`
// shortened them in the wasm (scripts/build-web.sh runs both).
//
//   node scripts/wasm-names.cjs MAP.json GLUE.js
//
// MAP.json is what wasm-opt printed: {"imports": [[module, old, new], ...],
// "exports": [[old, new], ...]}; every import goes to one module, "a".
// wasm-bindgen's names are long and unique (`__wbg_focus_d5e2fdbdb56416f0`:
// ~200 of them, each once in the wasm and once in the glue), which is why
// shortening them is worth ~4 KB gzipped. The glue is rewritten only where
// it is exactly as expected, or not at all: each import is one key of the
// import object, each export is read as a property (`wasm.name`), and the
// module is named once; anything else stops the build.
'use strict';
const fs = require('fs');

const [mapFile, glueFile] = process.argv.slice(2);
if (!mapFile || !glueFile) {
    console.error('usage: node scripts/wasm-names.cjs MAP.json GLUE.js');
    process.exit(2);
}
// wasm-opt prints the map as JSON, possibly after warnings: from the `{`.
const text = fs.readFileSync(mapFile, 'utf8');
const map = JSON.parse(text.slice(text.indexOf('{')));
let glue = fs.readFileSync(glueFile, 'utf8');

const fail = (why) => {
    console.error(`wasm-names: ${why}`);
    process.exit(1);
};
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
// `name` as a whole identifier, after `before` (a regex source).
const occurrences = (before, name) =>
    new RegExp(`(?<=${before})${escape(name)}(?![\\w$])`, 'g');
// Replaces `name` after `before` with `to`, which must occur `count` times
// (`count` 0: at least once, or never if `optional`).
const rename = (before, name, to, count, optional) => {
    const re = occurrences(before, name);
    const found = (glue.match(re) || []).length;
    if (count ? found !== count : found === 0 && !optional) {
        fail(`"${name}" occurs ${found} times in the glue`);
    }
    glue = glue.replace(re, to);
};

const modules = new Set(map.imports.map(([module]) => module));
if (map.imports.length === 0 || modules.size !== 1) {
    fail(`expected the imports of one module, found ${[...modules].join(', ')}`);
}
// The imports: keys of the one import object (`{__proto__:null,name:...`).
for (const [, name, to] of map.imports) {
    rename('[{,\\s]', name, to, 1);
}
// The exports: read as properties of the instance's exports. Some are
// only for the wasm's own use (`main`, ...) and never read.
for (const [name, to] of map.exports) {
    rename('\\.', name, to, 0, true);
}
// The module the imports come from, named once as a key.
const [from] = modules;
const key = new RegExp(`(["'])${escape(from)}\\1(?=\\s*:)`, 'g');
const keys = (glue.match(key) || []).length;
if (keys !== 1) {
    fail(`the module "${from}" is named ${keys} times in the glue`);
}
glue = glue.replace(key, '"a"');
fs.writeFileSync(glueFile, glue);
