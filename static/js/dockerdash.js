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
