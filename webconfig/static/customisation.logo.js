// The company logo in a page's header, when one is set (GET /api/customisation); on the login page also the
// background picture. Loaded by every page; a page without a picture set gets nothing but this small request.
"use strict";
(function () {
  async function show() {
    const response = await fetch("/api/customisation", {credentials: "same-origin", cache: "no-store"});
    if (!response.ok) return;
    const pictures = (await response.json()).pictures || {};
    const header = document.querySelector("header") || document.querySelector("main");
    if (pictures.logo && header && !document.getElementById("company-logo")) {
      const img = document.createElement("img");
      img.id = "company-logo";
      img.className = "company-logo";
      img.src = "/customisation/logo?v=" + pictures.logo.version;
      img.alt = "";                              // decorative: the page's title says where one is
      img.style.cssText = "max-height:48px;max-width:200px;width:auto;height:auto;display:block;flex:none;" +
        (header.tagName === "HEADER" ? "margin-right:12px;" : "margin-bottom:10px;");
      header.prepend(img);
    }
    if (pictures.background && document.body.dataset.background === "yes") {
      document.body.style.background = "#eef2f6 url(\"/customisation/background?v=" + pictures.background.version +
        "\") center / cover no-repeat fixed";
    }
  }
  show().catch(() => {});
})();
