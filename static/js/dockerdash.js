// Relative times ("12 s ago") stay true between pushes; htmx cannot tick a clock.
// The format is compact_duration's in machines/templatetags/dashboard.py.
function dockerdashDuration(s) {
  s = Math.max(0, Math.floor(s));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 172800) return Math.floor(s / 3600) + " h";
  return Math.floor(s / 86400) + " d";
}
setInterval(function () {
  for (const t of document.querySelectorAll("time.ago, time.for")) {
    const text = dockerdashDuration((Date.now() - Date.parse(t.dateTime)) / 1000);
    t.textContent = t.classList.contains("ago") ? text + " ago" : text;
  }
}, 5000);

// The machine list's selection for bulk actions: "select all on this page", and ticks that
// survive a row being replaced by a live push (a new <tr> comes unticked).
const dockerdashSelected = new Set();
document.addEventListener("change", function (event) {
  const box = event.target;
  if (box.matches("[data-select-all]")) {
    for (const row of document.querySelectorAll("#machine-rows input[name=machine]")) {
      row.checked = box.checked;
      if (box.checked) dockerdashSelected.add(row.value); else dockerdashSelected.delete(row.value);
    }
  } else if (box.matches("#machine-rows input[name=machine]")) {
    if (box.checked) dockerdashSelected.add(box.value); else dockerdashSelected.delete(box.value);
  }
});
document.addEventListener("htmx:afterSwap", function (event) {
  if (event.detail.target && event.detail.target.id === "machine-list") dockerdashSelected.clear();
});
document.addEventListener("htmx:oobAfterSwap", function () {
  for (const row of document.querySelectorAll("#machine-rows input[name=machine]")) {
    if (dockerdashSelected.has(row.value)) row.checked = true;
  }
});
