// The page's settings kept between visits (localStorage, one JSON object per
// key); where storage is off or holds something else, nothing is kept.

export function readStored(key) {
  try {
    const s = JSON.parse(localStorage.getItem(key) || "{}");
    return s && typeof s === "object" ? s : {};
  } catch (err) {
    return {};
  }
}

export function writeStored(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch (err) { /* storage off: nothing kept */ }
}
