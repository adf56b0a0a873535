// Plot colours, widths and fonts come from the Bokeh models only, not from CSS.
//
// Workaround for bokeh/bokeh#15286 (open; the fix started in bokeh/bokeh#15205 is not in
// Bokeh 3.9.2): BokehJS 3.9 reads every visual property of every glyph, axis and grid from
// the CSS cascade (getComputedStyle(el).getPropertyValue("--bk-line-color"), ...) at each
// paint, in case a stylesheet overrides it with a --bk-* custom property. QuickAnalysis sets
// none, and neither do Panel's and Bokeh's own stylesheets, so the answer is always "": it
// cost 0.4-0.5 s of Chromium's main thread per page load (about 8300 reads) and more per new
// frame, measured with the Chrome DevTools profiler on the dashboard.
(function () {
  if (typeof Bokeh === "undefined" || typeof Bokeh.require !== "function") { return; }
  let visual;
  try { visual = Bokeh.require("core/visuals/visual"); } catch (error) { return; }
  if (visual == null || visual.VisualProperties == null) { return; }
  visual.VisualProperties.prototype._get_css_value = function () { return ""; };
})();
