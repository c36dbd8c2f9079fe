"""The login page (/login): a challenge as a QR code and a link, then the verified account."""

from __future__ import annotations

import qrcode
import qrcode.image.svg


def qr_svg(text: str) -> str:
    """An SVG QR code of ``text`` (no raster library needed)."""
    img = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    data = img.to_string()
    return data.decode() if isinstance(data, bytes) else str(data)


LOGIN_PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>JPKI login / マイナンバーカードでログイン</title>
<style>
 body { font-family: sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em; }
 #qr svg { width: 16em; height: 16em; }
 #link { width: 100%; font-family: monospace; }
 .valid { color: #060; } .invalid, .indeterminate, .error { color: #a00; }
</style></head>
<body>
<h1>マイナンバーカードでログイン</h1>
<p>Scan the code with the card reader app, or run
<code>jpki login LINK</code> with the link below.</p>
<div id="qr">…</div>
<p><input id="link" readonly value="">
<button id="copy" type="button">copy</button></p>
<p id="status">requesting a challenge…</p>
<p>Account: <code id="account"></code></p>
<script>
"use strict";
const statusEl = document.getElementById("status");
function show(text, cls) { statusEl.textContent = text; statusEl.className = cls || ""; }
function done(r) {
  show(r.status === "valid" ? "verified: " + r.status : "not verified: " + r.status
       + (r.reasons && r.reasons.length ? " (" + r.reasons.join("; ") + ")" : ""), r.status);
  if (r.status === "valid") { document.getElementById("account").textContent = r.account_key; }
}
async function poll(link) {
  for (;;) {
    const r = await (await fetch(link)).json();
    if (r.result) { done(r.result); return; }
    await new Promise(ok => setTimeout(ok, 1000));
  }
}
async function start() {
  const resp = await fetch("/login/challenges", {method: "POST"});
  if (!resp.ok) { show("could not get a challenge (" + resp.status + ")", "error"); return; }
  const ch = await resp.json();
  document.getElementById("qr").innerHTML = ch.qr_svg;
  const link = document.getElementById("link");
  link.value = ch.link;
  document.getElementById("copy").onclick = () => {
    link.select();
    if (navigator.clipboard) { navigator.clipboard.writeText(ch.link); }
  };
  show("waiting for the card…", "waiting");
  if (window.EventSource) {
    const es = new EventSource("/login/c/" + encodeURIComponent(ch.id) + "/events");
    es.addEventListener("result", ev => { es.close(); done(JSON.parse(ev.data)); });
    es.addEventListener("error", ev => {
      if (ev.data) { es.close(); show(JSON.parse(ev.data).error, "error"); }
      else { es.close(); poll(ch.link); }
    });
  } else { poll(ch.link); }
}
start();
</script>
</body></html>
"""
