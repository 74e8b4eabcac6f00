// glisk dashboard: replace <main> with a fresh copy every few seconds, without a full reload.
// The server renders the fragment (`?part=main`); nothing here builds markup.
"use strict";
(function () {
  const main = document.querySelector("main[data-refresh]");
  if (!main) return;
  const every = Math.max(1, Number(main.dataset.refresh) || 3) * 1000;
  async function refresh() {
    if (!document.hidden) {
      try {
        const url = new URL(window.location.href);
        url.searchParams.set("part", "main");
        const reply = await fetch(url, { cache: "no-store", credentials: "same-origin" });
        // 503 is a page too: it says what the server could not read
        if (!reply.ok && reply.status !== 503) throw new Error(String(reply.status));
        main.innerHTML = await reply.text();
        document.body.classList.remove("stale");
      } catch (_) {
        document.body.classList.add("stale");
      }
    }
    window.setTimeout(refresh, every);
  }
  window.setTimeout(refresh, every);
})();
