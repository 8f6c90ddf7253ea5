// A code cell or an output wider (or taller) than the page scrolls inside its box. A keyboard user scrolls it with
// the arrow keys only once it can take focus (axe-core: scrollable-region-focusable), so every such box gets
// tabindex=0, with a name a screen reader reads on the way in (numbered: two regions may not share a name).
window.addEventListener("load", function () {
  let count = 0;
  for (const box of document.querySelectorAll("article *")) {
    const style = getComputedStyle(box);
    const scrolls = /(auto|scroll)/.test(style.overflowX + " " + style.overflowY) &&
      (box.scrollWidth > box.clientWidth || box.scrollHeight > box.clientHeight);
    if (scrolls && !box.hasAttribute("tabindex")) {
      box.setAttribute("tabindex", "0");
      if (!box.hasAttribute("role")) {
        box.setAttribute("role", "region");
        count += 1;
        box.setAttribute("aria-label", (box.closest(".cell_output") ? "output " : "code ") + count + ", scrollable");
      }
    }
  }
});
