/* Image viewer of the medadv reader app: zoom, pan and window/level, as on a radiology reading screen.
 *
 * MedadvViewer.show(stage, panels) puts one panel (or the education session's three) into the stage and resolves
 * when the images are decoded and drawn. Every image opens in the same starting view: "fit" (the whole image, at
 * one image pixel per screen pixel or a whole multiple of it when it fits, scaled down to fit when it does not) and
 * the full window (each stored grey level shown as itself). The three panels of a triplet share one view (zoom,
 * pan and window move together). Nothing the viewer does reaches the answers, their reading times or the saved
 * progress: the view lives in this file's variables only and starts afresh with every image.
 *
 * Mouse: wheel zooms at the pointer; drag pans; Shift+drag or right-button drag sets the window/level (left-right:
 * window width, right = wider = less contrast; up-down: level, down = higher = darker); double-click toggles fit and
 * 1:1. Touch: one finger pans (or sets the window/level in W/L mode), two fingers pinch-zoom and pan. Keys: F fit,
 * A 1:1, + / - zoom, W switches what a plain drag does (pan or window/level, for touch screens and trackpads), 0
 * resets zoom, pan and window, H or ? lists the keys, Esc closes the list.
 *
 * How it is drawn, and why:
 * - Zoom and pan are a CSS transform of the <img>. The zoom is counted in device pixels per image pixel, so 1:1
 *   is one image pixel per physical screen pixel on a high-density display too, and the translation is snapped to
 *   the device-pixel grid, so that at 1:1 every stored pixel lands on one screen pixel (the browser test compares
 *   a screenshot with the PNG; app.css gives the image will-change: transform, without which Chromium blends its
 *   edge pixels with the background). From 1:1 up the image is drawn nearest-neighbour (image-rendering: pixelated):
 *   each image pixel becomes a uniform block and no grey level is invented between the 1-2 pixel specks of a
 *   calcification cluster; below 1:1 the browser's smoothing filter is kept, which averages instead of dropping
 *   pixels (nearest-neighbour there would alias and could drop a speck altogether).
 * - Window/level is an SVG feComponentTransfer filter (type "linear", in the sRGB space the PNG's grey levels are
 *   stored in): grey v in 0-255 is shown as clamp((v - (level - window / 2)) / window) x 255, the same straight
 *   line a radiology viewer applies, computed by the browser per pixel and rounded once to 8 bits (the test finds
 *   it within one grey level of the exact value). Reading the pixels into a canvas and mapping them by script is
 *   not possible here: a page opened from a file:// URL may draw its images into a canvas but not read them back
 *   (the canvas is "tainted"), and the session packages must run offline as plain files. The CSS shorthands
 *   brightness() and contrast() were not used: they are two clamped steps whose composition is not the window's
 *   straight line for every window. At the full window (255 / 127.5) no filter is applied at all.
 */
(function () {
  "use strict";

  var FULL_WINDOW = 255;
  var FULL_LEVEL = 127.5;
  var MAX_ZOOM = 32;          // device pixels per image pixel
  var WHEEL_RATE = 0.002;     // zoom factor exp(-rate * wheel pixels)
  var FILTER_ID = "window-level";  // the SVG filter in app.html
  var KEYS = { f: "fit", a: "actual", "+": "in", "=": "in", "-": "out", _: "out", w: "window", "0": "reset",
               h: "help", "?": "help" };

  var stage = null;
  var panels = [];            // [{ box, img }]
  var view = null;            // { fit, zoom, fx, fy, window, level }: centre (fx, fy) as fractions of the image
  var dragWindows = false;    // W mode: a plain drag sets the window/level instead of panning
  var gesture = null;
  var pointers = {};
  var transfer = [];          // the filter's feFuncR/G/B (type "linear": slope and intercept set here)

  function dpr() { return window.devicePixelRatio || 1; }
  function clamp(x, lo, hi) { return Math.min(hi, Math.max(lo, x)); }

  function freshView() {
    return { fit: true, zoom: 1, fx: 0.5, fy: 0.5, window: FULL_WINDOW, level: FULL_LEVEL };
  }

  /* The whole device pixels of a panel's box (it has no border): [left, top, right, bottom] from the window's corner. */
  function pixelsOf(box) {
    var d = dpr();
    var r = box.getBoundingClientRect();
    return [Math.ceil(r.left * d), Math.ceil(r.top * d), Math.floor(r.right * d), Math.floor(r.bottom * d)];
  }

  /* Largest zoom (device px per image px) at which the whole image fits in every panel, unrounded. */
  function fitScale() {
    return Math.min.apply(null, panels.map(function (p) {
      var px = pixelsOf(p.box);
      return Math.min((px[2] - px[0]) / p.img.naturalWidth, (px[3] - px[1]) / p.img.naturalHeight);
    }));
  }

  /* The "fit" zoom: a whole multiple of 1:1 when the image fits at 1:1, else the scale that fits it. */
  function fitZoom() {
    var f = fitScale();
    return f >= 1 ? Math.floor(f) : f;
  }

  function minZoom() { return Math.min(1, fitScale()) / 2; }

  /* Leave fit mode: the zoom the fit gave becomes the explicit zoom that a gesture then changes. */
  function settle() {
    if (view.fit) {
      view.zoom = fitZoom();
      view.fx = 0.5;
      view.fy = 0.5;
      view.fit = false;
    }
  }

  function readout(zoom) {
    var text = Math.round(zoom * 100) + "%  W " + Math.round(view.window) + "  L " + Math.round(view.level);
    var el = document.getElementById("view-readout");
    if (el) el.textContent = text;
    var toggle = document.querySelector('#view-tools [data-view="window"]');
    if (toggle) toggle.setAttribute("aria-pressed", String(dragWindows));
    stage.classList.toggle("drag-window", dragWindows);
  }

  function render() {
    if (!panels.length || !panels[0].img.naturalWidth) return;
    var d = dpr();
    var zoom = view.fit ? fitZoom() : view.zoom;
    var s = zoom / d;
    var identity = view.window === FULL_WINDOW && view.level === FULL_LEVEL;
    transfer.forEach(function (f) {
      f.setAttribute("slope", String(FULL_WINDOW / view.window));
      f.setAttribute("intercept", String((view.window / 2 - view.level) / view.window));
    });
    panels.forEach(function (p) {
      var px = pixelsOf(p.box);
      var w = p.img.naturalWidth * zoom;
      var h = p.img.naturalHeight * zoom;
      // the image's corner in device px, on the pixel grid; in fit mode kept inside the box's whole pixels
      var x = Math.round((px[0] + px[2]) / 2 - view.fx * w);
      var y = Math.round((px[1] + px[3]) / 2 - view.fy * h);
      if (view.fit) {
        x = clamp(x, px[0], Math.floor(px[2] - w));
        y = clamp(y, px[1], Math.floor(px[3] - h));
      }
      var rect = p.box.getBoundingClientRect();
      var tx = x / d - rect.left;
      var ty = y / d - rect.top;
      p.img.style.transform = "translate(" + tx + "px, " + ty + "px) scale(" + s + ")";
      p.img.style.imageRendering = zoom >= 1 ? "pixelated" : "auto";
      p.img.style.filter = identity ? "none" : "url(#" + FILTER_ID + ")";
    });
    readout(zoom);
  }

  /* Zoom by `factor` keeping the image point under (px, py) (CSS px in box) where it is. */
  function zoomAt(factor, box, px, py) {
    settle();
    var p = panels[0];
    var s = view.zoom / dpr();
    var zoom = clamp(view.zoom * factor, minZoom(), MAX_ZOOM);
    var s2 = zoom / dpr();
    var ox = px - box.clientWidth / 2;
    var oy = py - box.clientHeight / 2;
    view.fx += ox / p.img.naturalWidth * (1 / s - 1 / s2);
    view.fy += oy / p.img.naturalHeight * (1 / s - 1 / s2);
    view.zoom = zoom;
    keepInView();
    render();
  }

  function setZoom(zoom) {
    settle();
    view.zoom = clamp(zoom, minZoom(), MAX_ZOOM);
    keepInView();
    render();
  }

  /* Step along the ladder 2^(k/2) (1:1, 141%, 200%, ...), so that two steps from 1:1 give exactly 2:1. */
  function stepZoom(up) {
    settle();
    var k = Math.log(view.zoom) / Math.LN2 * 2;
    k = up ? Math.floor(k + 1e-6) + 1 : Math.ceil(k - 1e-6) - 1;
    setZoom(Math.pow(2, k / 2));
  }

  function keepInView() {
    view.fx = clamp(view.fx, 0, 1);
    view.fy = clamp(view.fy, 0, 1);
  }

  function pan(dx, dy) {
    settle();
    var s = view.zoom / dpr();
    view.fx -= dx / (panels[0].img.naturalWidth * s);
    view.fy -= dy / (panels[0].img.naturalHeight * s);
    keepInView();
    render();
  }

  /* One CSS pixel of drag moves the window width or the level by one grey level. */
  function adjustWindow(dx, dy) {
    view.window = clamp(view.window + dx, 1, 2 * FULL_WINDOW);
    view.level = clamp(view.level + dy, 0, FULL_WINDOW);
    render();
  }

  function act(action) {
    if (!panels.length || !view) return;
    if (action === "fit") { view.fit = true; view.fx = 0.5; view.fy = 0.5; render(); }
    else if (action === "actual") setZoom(1);
    else if (action === "in" || action === "out") stepZoom(action === "in");
    else if (action === "window") { dragWindows = !dragWindows; readout(view.fit ? fitZoom() : view.zoom); }
    else if (action === "reset") { view = freshView(); render(); }
    else if (action === "help") toggleHelp();
  }

  function toggleHelp(hide) {
    var help = document.getElementById("keys-help");
    if (help) help.hidden = hide === true ? true : !help.hidden;
  }

  function local(box, ev) {
    var rect = box.getBoundingClientRect();
    return { x: ev.clientX - rect.left - box.clientLeft, y: ev.clientY - rect.top - box.clientTop };
  }

  function pinchOf(box) {
    var ids = Object.keys(pointers);
    var a = pointers[ids[0]];
    var b = pointers[ids[1]];
    return { box: box, dist: Math.hypot(a.x - b.x, a.y - b.y) || 1, x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
  }

  function onPointerDown(ev) {
    if (ev.button !== 0 && ev.button !== 2) return;
    var box = ev.currentTarget;
    box.setPointerCapture(ev.pointerId);
    pointers[ev.pointerId] = local(box, ev);
    var count = Object.keys(pointers).length;
    if (count === 2) gesture = { kind: "pinch", last: pinchOf(box) };
    else if (count === 1) {
      var windows = ev.button === 2 || ev.shiftKey || dragWindows;
      gesture = { kind: windows ? "window" : "pan", id: ev.pointerId };
    }
    ev.preventDefault();
  }

  function onPointerMove(ev) {
    if (!gesture || !pointers.hasOwnProperty(ev.pointerId)) return;
    var box = ev.currentTarget;
    var at = local(box, ev);
    var before = pointers[ev.pointerId];
    pointers[ev.pointerId] = at;
    if (gesture.kind === "pinch") {
      var now = pinchOf(box);
      zoomAt(now.dist / gesture.last.dist, box, now.x, now.y);
      pan(now.x - gesture.last.x, now.y - gesture.last.y);
      gesture.last = now;
    } else if (ev.pointerId === gesture.id) {
      if (gesture.kind === "pan") pan(at.x - before.x, at.y - before.y);
      else adjustWindow(at.x - before.x, at.y - before.y);
    }
  }

  function onPointerUp(ev) {
    delete pointers[ev.pointerId];
    var left = Object.keys(pointers);
    gesture = left.length === 1 ? { kind: dragWindows ? "window" : "pan", id: Number(left[0]) } : null;
  }

  function onWheel(ev) {
    ev.preventDefault();
    var box = ev.currentTarget;
    var unit = ev.deltaMode === 1 ? 16 : ev.deltaMode === 2 ? box.clientHeight : 1;
    var at = local(box, ev);
    zoomAt(Math.exp(-ev.deltaY * unit * WHEEL_RATE), box, at.x, at.y);
  }

  function onDoubleClick(ev) {
    var box = ev.currentTarget;
    var at = local(box, ev);
    if (!view.fit && Math.abs(view.zoom - 1) < 1e-9) act("fit");
    else zoomAt(1 / (view.fit ? fitZoom() : view.zoom), box, at.x, at.y);
  }

  function panel(src, caption) {
    var fig = document.createElement("figure");
    var box = document.createElement("div");
    box.className = "view-box";
    var img = document.createElement("img");
    img.src = src;
    img.alt = caption || "image to read";
    img.draggable = false;
    box.appendChild(img);
    fig.appendChild(box);
    if (caption) {
      var cap = document.createElement("figcaption");
      cap.textContent = caption;
      fig.appendChild(cap);
    }
    box.addEventListener("pointerdown", onPointerDown);
    box.addEventListener("pointermove", onPointerMove);
    box.addEventListener("pointerup", onPointerUp);
    box.addEventListener("pointercancel", onPointerUp);
    box.addEventListener("wheel", onWheel, { passive: false });
    box.addEventListener("dblclick", onDoubleClick);
    box.addEventListener("contextmenu", function (ev) { ev.preventDefault(); });
    return { fig: fig, box: box, img: img };
  }

  /* Three panels side by side or stacked, whichever shows them larger in this stage. */
  function arrange() {
    if (panels.length < 2 || !panels[0].img.naturalWidth) return;
    var w = stage.clientWidth;
    var h = stage.clientHeight;
    var n = panels.length;
    var iw = panels[0].img.naturalWidth;
    var ih = panels[0].img.naturalHeight;
    var side = Math.min(w / n / iw, h / ih);
    var stacked = Math.min(w / iw, h / n / ih);
    stage.classList.toggle("stacked", stacked > side);
  }

  /**
   * Show `items` ([{ src, caption }]) in `stage` in the starting view.
   *
   * Returns a Promise that resolves when every image is decoded and drawn, and rejects when one cannot be loaded.
   */
  function show(target, items) {
    stage = target;
    stage.textContent = "";
    stage.className = items.length > 1 ? "triplet" : "";
    view = freshView();
    gesture = null;
    pointers = {};
    toggleHelp(true);
    panels = items.map(function (item) { return panel(item.src, item.caption); });
    panels.forEach(function (p) { stage.appendChild(p.fig); });
    return Promise.all(panels.map(function (p) { return p.img.decode(); })).then(function () {
      arrange();
      render();
    });
  }

  function onKey(ev) {
    var screen = document.getElementById("screen-read");
    if (!panels.length || !screen || screen.hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
    if (key === "Escape") { toggleHelp(true); return; }
    if (!KEYS.hasOwnProperty(key)) return;
    ev.preventDefault();
    act(KEYS[key]);
  }

  function init() {
    transfer = Array.prototype.slice.call(document.querySelectorAll("#" + FILTER_ID + " feComponentTransfer > *"));
    document.addEventListener("keydown", onKey);
    document.querySelectorAll("#view-tools [data-view]").forEach(function (b) {
      b.addEventListener("click", function () { b.blur(); act(b.dataset.view); });
    });
    var help = document.getElementById("keys-help");
    if (help) help.addEventListener("click", function () { toggleHelp(true); });
    window.addEventListener("resize", function () { arrange(); render(); });
    if (window.ResizeObserver) {
      new ResizeObserver(function () { if (stage) { arrange(); render(); } })
        .observe(document.getElementById("stage"));
    }
  }

  window.MedadvViewer = { show: show };
  init();
}());
