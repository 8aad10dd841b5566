"""index.html: every table and figure of the report on one self-contained page.

The page carries a small self-check: when it has loaded, a script counts the tables and the images
that failed to load and writes the verdict into #selfcheck, so a headless browser's DOM dump tells
a test whether the page rendered (the test also reads the browser's console log).
"""

import html

CSS = """
body { font-family: sans-serif; margin: 1.5em; max-width: 1400px; }
table.result { border-collapse: collapse; margin: 0.8em 0 0.3em 0; font-size: 0.8em; }
table.result caption { text-align: left; font-weight: bold; padding-bottom: 0.3em; }
table.result th, table.result td { border: 1px solid #bbb; padding: 2px 6px; text-align: right; }
table.result thead th { text-align: center; }
table.result tbody th { text-align: left; font-weight: normal; white-space: nowrap; }
table.result tr.family th { background: #eef; text-align: left; font-style: italic; }
td.code { text-align: center; color: #555; background: #f6f6f6; font-size: 0.9em; }
td.unadaptable { color: #666; } td.failure { color: #a00; } td.corrupted { color: #a50; }
.scroll { overflow-x: auto; }
.pair { display: flex; gap: 1em; flex-wrap: wrap; align-items: flex-start; }
.pair figure { margin: 0; }
.pair img, figure img { max-width: 640px; border: 1px solid #ddd; }
p.note, figcaption { font-size: 0.8em; color: #444; max-width: 1100px; }
#selfcheck { font-size: 0.75em; color: #888; }
dl.prov dt { font-weight: bold; } dl.prov dd { margin: 0 0 0.3em 1em; font-family: monospace; }
"""

SELFCHECK = """
window.addEventListener("load", function () {
  var broken = [];
  var imgs = document.querySelectorAll("img");
  for (var i = 0; i < imgs.length; i++) {
    if (!imgs[i].complete || imgs[i].naturalWidth === 0) broken.push(imgs[i].getAttribute("src"));
  }
  var tables = document.querySelectorAll("table.result").length;
  var el = document.getElementById("selfcheck");
  el.setAttribute("data-tables", String(tables));
  el.setAttribute("data-images", String(imgs.length));
  el.setAttribute("data-broken", broken.join(" "));
  el.textContent = broken.length ? "selfcheck: broken images: " + broken.join(", ")
                                 : "selfcheck: ok, " + tables + " tables, " + imgs.length + " images";
  if (broken.length) console.error("broken images: " + broken.join(", "));
});
"""


def _figure(src, caption, alt):
    e = html.escape
    return ('<figure><img src="%s" alt="%s"><figcaption>%s</figcaption></figure>'
            % (e(src), e(alt), e(caption)))


def render(tables, figures, provenance, results_dir, table_files):
    """tables: dict key -> Table (in page order); figures: from figures.all_figures;
    provenance: dict file -> dict; table_files: key -> (markdown file, latex file)."""
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>fixgrid report</title>", "<style>%s</style>" % CSS, "</head><body>",
           "<h1>fixgrid report</h1>",
           "<p>Results: <code>%s</code>. Tables and figures of the study (You et al., "
           "arXiv 2512.23745) regenerated from fixgrid's CSV tables, beside the study's own "
           "numbers (analysis/reference/).</p>" % e(results_dir)]
    out.append("<nav><ul>%s<li><a href=\"#figures\">Figures</a></li>"
               "<li><a href=\"#provenance\">Provenance</a></li></ul></nav>" % "".join(
                   '<li><a href="#sec-%s">%s</a></li>' % (e(k), e(t.title)) for k, t in tables.items()))
    for key, t in tables.items():
        md, tex = table_files.get(key, (None, None))
        links = ""
        if md:
            links = ' <small>(<a href="%s">Markdown</a>, <a href="%s">LaTeX</a>)</small>' % (
                e(md), e(tex))
        out.append('<section id="sec-%s"><h2>%s%s</h2><div class="scroll">%s</div></section>'
                   % (e(key), e(t.title), links, t.to_html()))
    out.append('<section id="figures"><h2>Figures</h2>')
    for key, ours, study, caption in figures:
        out.append('<h3 id="fig-%s">%s</h3>' % (e(key), e(caption.split(",")[0].split(".")[0])))
        if study:
            out.append('<div class="pair">%s%s</div>' % (
                _figure(ours, "fixgrid", "fixgrid " + key), _figure(study, "study", "study " + key)))
        else:
            out.append('<div class="pair">%s</div>' % _figure(ours, "fixgrid", "fixgrid " + key))
        out.append('<p class="note">%s</p>' % e(caption))
    out.append("</section>")
    out.append('<section id="provenance"><h2>Provenance</h2>')
    for name, prov in provenance.items():
        out.append("<h3>%s</h3><dl class=\"prov\">%s</dl>" % (e(name), "".join(
            "<dt>%s</dt><dd>%s</dd>" % (e(k), e(v)) for k, v in prov.items())))
    out.append("</section>")
    out.append('<p id="selfcheck">selfcheck: not run (scripts disabled)</p>')
    out.append("<script>%s</script>" % SELFCHECK)
    out.append("</body></html>")
    return "\n".join(out) + "\n"
