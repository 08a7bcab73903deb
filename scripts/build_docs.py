#!/usr/bin/env python
"""Build the documentation site: every notebook in nbs/ as a static HTML page in _docs/, offline, in one command.

    python scripts/build_docs.py            # -> _docs/index.html
    python scripts/build_docs.py --out DIR  # somewhere else (the browser test builds into a temporary folder)

Each notebook goes through nbdev's own documentation processors (`#| hide` and `#| export` cells removed, `#| exports`
source kept, a `show_doc` reference after each exported function and class, title and description from the first
heading), then through nbconvert's HTML exporter. Quarto, which nbdev normally hands the result to, is not used: the
few Quarto cell options nbdev adds (`echo`, `output`, `include`) are applied here. The `show_doc` cells are evaluated
against the exported module (`directcms.<default_exp>`) instead of re-running the notebook's cells.

The pages need nothing from the network: MathJax 2 (from the `jupyter-server-mathjax` package) is copied into
`_docs/mathjax/`, the notebook CSS of nbconvert into `_docs/static/`, plots are embedded in the pages, and the files
that pages link to (committed figures, `figures/*.md` reports, rendered as pages too) are copied next to them.
Links to notebooks become links to their pages. Open `_docs/index.html` in a browser with JavaScript enabled.

The notebook list comes from `nbs/*.ipynb` at build time: numbered library notebooks in number order, grouped by
layer (the tens digit of the number), then the unnumbered entry notebooks; `index.ipynb` is the home page.
"""
import argparse, contextlib, html, importlib, json, os, re, shutil, sys, time, warnings
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
# tens digit of a notebook's number -> its layer, one subpackage of directcms/ each (tests/test_layers.py)
LAYERS = {0: "Core", 1: "Support", 2: "Presets", 3: "Run", 4: "Science"}
FIRST_ENTRY = ("train",)                                                    # entry notebooks listed before the rest
_re_num = re.compile(r"^(\d+)([a-z]*)_")


# ---------------------------------------------------------------------------------------------- the notebook list
def number(path):
    "(number, letter) of a library notebook such as `10_runio.ipynb`; None for unnumbered notebooks."
    m = _re_num.match(path.stem)
    return (int(m.group(1)), m.group(2)) if m else None


def layer_of(path):
    n = number(path)
    if n is None: return "Entry notebooks"
    d = n[0] // 10
    return f"{LAYERS[d]} ({d}0–{d}9)" if d in LAYERS else f"Notebooks {d}0–{d}9"


def notebooks(nbs=NBS):
    "index first, then library notebooks in number order, then entry notebooks (`FIRST_ENTRY` first, the rest by name)."
    from nbdev.doclinks import nbglob            # nbdev's own rules: settings.ini `recursive`, no `_`/`.` names
    all_ = [Path(p) for p in nbglob(nbs, as_path=True)]
    lib = sorted((p for p in all_ if number(p)), key=lambda p: (number(p), p.stem))
    entry = sorted((p for p in all_ if not number(p) and not (p.stem == "index" and p.parent == nbs)),
                   key=lambda p: (FIRST_ENTRY.index(p.stem) if p.stem in FIRST_ENTRY else len(FIRST_ENTRY), p.stem))
    return [p for p in all_ if p.stem == "index" and p.parent == nbs] + lib + entry


# -------------------------------------------------------------------------------------- nbdev's processing in Python
def _nbdev():
    "nbdev's pieces, imported late so that `--help` works without nbdev."
    from types import SimpleNamespace
    from execnb.nbio import read_nb
    from fastcore.xtras import dict2obj
    from nbdev.config import get_config
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.process import NBProcessor, Processor
    from nbdev import processors
    from nbdev.showdoc import show_doc
    return SimpleNamespace(**locals())


@contextlib.contextmanager
def local_doclinks(lib_name):
    "nbdev's `add_links` links backticked names to the docs of installed nbdev libraries; add this checkout's index."
    from importlib.metadata import EntryPoint
    from nbdev import doclinks
    real = doclinks.entry_points

    def with_local(*a, **kw):
        eps = real(*a, **kw)
        if kw.get("group") != "nbdev": return eps
        return [e for e in eps if e.name != lib_name] + [EntryPoint(lib_name, f"{lib_name}._modidx:d", "nbdev")]
    doclinks.entry_points = with_local
    doclinks._build_lookup_table.cache_clear()
    try: yield
    finally:
        doclinks.entry_points = real
        doclinks._build_lookup_table.cache_clear()


def doc_processors(module_prefix):
    "nbdev's documentation processors, with `exec_show_docs` (which re-runs the notebook's cells) replaced."
    nd = _nbdev()
    P, show_doc = nd.processors, nd.show_doc

    class show_docs_from_module(nd.Processor):
        "Fill each `show_doc(name)` cell with its markdown, `name` looked up in the notebook's exported module."
        def begin(self):
            mods = [c.directives_["default_exp"][0] for c in self.nb.cells
                    if c.cell_type == "code" and c.get("directives_", {}).get("default_exp")]
            self.ns, self.mod = None, f"{module_prefix}.{mods[0]}" if mods else None
            if mods: self.ns = dict(vars(importlib.import_module(self.mod)), show_doc=show_doc)

        def cell(self, cell):
            if cell.cell_type != "code" or not getattr(cell, "has_sd", False) and not P._is_showdoc(cell): return
            if self.ns is None: raise ValueError(f"{self.nb.path_}: show_doc without a `#| default_exp` module")
            expr = "\n".join(l for l in cell.source.splitlines() if not l.lstrip().startswith("#|"))
            try: md = eval(expr, self.ns)._repr_markdown_()
            except Exception as e:
                raise RuntimeError(f"{self.nb.path_}: {expr!r} failed against {self.mod}: {e!r}") from e
            # the source link is written with a Quarto attribute block: as HTML here
            md = re.sub(r"\[source\]\(([^)\s]*)\)\{[^}]*\}", r'<a class="source-link" href="\1">source</a>', md)
            name = re.search(r"show_doc\(\s*([\w.]+)", expr)
            if name and name.group(1) != name.group(1).lower():   # nbdev's links use the lower-case name as anchor
                md = f'<span id="{name.group(1).lower()}"></span>\n\n' + md
            cell.outputs = [nd.dict2obj({"output_type": "display_data", "metadata": {},
                                      "data": {"text/markdown": md.splitlines(True)}})]

    class DocProcs(P.FilterDefaults):
        def base_procs(self):
            return [show_docs_from_module if p is P.exec_show_docs else p for p in super().base_procs()]
    return DocProcs().procs()


_re_quarto = re.compile(r"^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$")


def apply_quarto_options(cell):
    "What Quarto would do with the `#| key: value` options left in a processed cell; False: drop the cell."
    if cell["cell_type"] != "code": return True
    lines, opts = cell["source"].splitlines(), {}
    while lines and _re_quarto.match(lines[0]):
        k, v = _re_quarto.match(lines.pop(0)).groups()
        opts[k] = v.strip("\"'").lower()
    cell["source"] = "\n".join(lines).strip("\n")
    if opts.get("include") == "false": return False
    if opts.get("output") == "false": cell["outputs"] = []
    if opts.get("echo") == "false": cell.setdefault("metadata", {}).setdefault("transient", {})["remove_source"] = True
    return bool(cell["source"] or cell.get("outputs"))


def process(path, procs):
    "A notebook after nbdev's documentation processors: (plain nbformat dict, frontmatter dict)."
    nd = _nbdev()
    nb = nd.read_nb(path)
    nb.path_ = str(path)
    nd.NBProcessor(nb=nb, procs=procs).process()
    fm = dict(getattr(nb, "frontmatter_", {}) or {})
    # add_show_docs inserts each name's cell right after the exporting cell, so a cell's names come out reversed
    sd, i = list(nb.cells), 0
    while i < len(sd):
        j = i
        while j < len(sd) and sd[j].get("has_sd"): j += 1
        if j > i + 1: sd[i:j] = sd[i:j][::-1]
        i = max(j, i + 1)
    nb.cells = sd
    cells = []
    for i, c in enumerate(nb.cells):
        if c.cell_type == "raw" and c.source.lstrip().startswith("---"): continue   # nbdev's frontmatter cell
        if c.cell_type == "markdown" and "WARNING: THIS FILE WAS AUTOGENERATED" in c.source: continue
        cell = {"id": c.get("id") or f"c{i}", "cell_type": c.cell_type, "source": c.source,
                "metadata": _plain(dict(c.get("metadata", {})))}
        if c.cell_type == "code": cell.update(outputs=[_plain(o) for o in c.get("outputs", [])],
                                              execution_count=c.get("execution_count"))
        if c.get("attachments"): cell["attachments"] = _plain(c.attachments)
        if apply_quarto_options(cell): cells.append(cell)
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": _plain(nb.get("metadata", {})), "cells": cells}, fm


def _plain(o):
    if isinstance(o, dict): return {k: _plain(v) for k, v in o.items() if not k.endswith("_")}
    if isinstance(o, (list, tuple)): return [_plain(v) for v in o]
    return o


def front_matter(path):
    "Title and description of a notebook, read the way nbdev does (YAML raw cell or `# title` / `> description`)."
    nd = _nbdev()
    nb = nd.read_nb(path)
    nb.path_ = str(path)
    nd.NBProcessor(nb=nb, procs=[nd.FrontmatterProc]).process()
    fm = dict(getattr(nb, "frontmatter_", {}) or {})
    fm.setdefault("title", path.stem)
    return fm


# ---------------------------------------------------------------------------------------------------- the HTML page
PAGE = r"""{%- extends 'base.html.j2' -%}
{%- block header -%}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{{ resources.site.title | e }}
{%- if resources.site.title != resources.site.name %} · {{ resources.site.name | e }}{% endif %}</title>
<link rel="stylesheet" href="{{ resources.site.up }}static/index.css">
<link rel="stylesheet" href="{{ resources.site.up }}static/theme-light.css">
<link rel="stylesheet" href="{{ resources.site.up }}static/site.css">
<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  TeX: {extensions: ["AMSmath.js", "AMSsymbols.js", "noErrors.js", "noUndefined.js"]},
  tex2jax: {inlineMath: [["$", "$"], ["\\(", "\\)"]], displayMath: [["$$", "$$"], ["\\[", "\\]"]],
            processEscapes: true, processEnvironments: true},
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null},
  showMathMenu: false,
  messageStyle: "none"
});
</script>
<script src="{{ resources.site.up }}mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"></script>
</head>
{%- endblock header -%}
{#- as lab's, but the highlighted source of the project's own notebooks skips bleach (a third of the time) -#}
{% block input %}
<div class="jp-CodeMirrorEditor jp-Editor jp-InputArea-editor" data-type="inline">
     <div class="cm-editor cm-s-jupyter">
{{ cell.source | highlight_code(metadata=cell.metadata) }}
     </div>
</div>
{%- endblock input %}
{%- block body_header -%}
<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
<nav class="site-nav">
<a class="site-name" href="{{ resources.site.up }}index.html">{{ resources.site.name | e }}</a>
{{ resources.site.sidebar }}
</nav>
<main class="site-main">
<header class="page-header">
<h1 class="page-title">{{ resources.site.title | e }}</h1>
{%- if resources.site.description %}
<p class="page-description">{{ resources.site.description_html }}</p>
{%- endif %}
<p class="page-source">{{ resources.site.source | e }}</p>
</header>
{%- endblock body_header -%}
{%- block body_footer -%}
</main>
</body>
{%- endblock body_footer -%}
{%- block footer -%}
</html>
{%- endblock footer -%}
"""

SITE_CSS = """
body.jp-Notebook { margin: 0; padding: 0; }
.site-nav { position: fixed; top: 0; left: 0; bottom: 0; width: 17rem; overflow-y: auto; padding: 1rem 0.8rem;
  background: #f6f7f9; border-right: 1px solid #dde; font: 14px/1.35 system-ui, sans-serif; box-sizing: border-box; }
.site-nav .site-name { display: block; font-size: 1.25rem; font-weight: 600; margin-bottom: 0.8rem; color: #222;
  text-decoration: none; }
.site-nav h2 { font-size: 0.8rem; text-transform: uppercase; letter-spacing: 0.05em; color: #667;
  margin: 1rem 0 0.3rem; }
.site-nav ul { list-style: none; margin: 0; padding: 0; }
.site-nav li a { display: block; padding: 0.18rem 0.35rem; border-radius: 4px; color: #234; text-decoration: none; }
.site-nav li a:hover { background: #e6e9f0; }
.site-nav li a.current { background: #dbe4ff; font-weight: 600; }
.site-nav .num { display: inline-block; min-width: 2.1rem; color: #889; font-variant-numeric: tabular-nums; }
.site-main { margin-left: 17rem; padding: 1.5rem 2rem 4rem; max-width: 62rem; }
.page-header { margin: 0 0 1rem 0; padding-left: 0.5rem; }
.page-title { font-size: 2rem; margin: 0.2rem 0 0.4rem; }
.page-description { font-size: 1.1rem; color: #444; margin: 0 0 0.3rem; }
.page-source { font: 12px monospace; color: #889; margin: 0; }
.jp-OutputArea-output.jp-RenderedMarkdown { padding-left: 0.5rem; }
.jp-RenderedMarkdown table { border-collapse: collapse; }
a.anchor-link { visibility: hidden; text-decoration: none; margin-left: 0.3em; }
:is(h1, h2, h3, h4):hover > a.anchor-link { visibility: visible; }
.jp-InputArea { overflow: hidden; }
.jp-InputArea-editor .highlight pre { overflow-x: auto; padding: var(--jp-code-padding) 4px; margin: 0; }
.jp-Collapser { display: none; }
.jp-RenderedMarkdown img { max-width: 100%; }
a.source-link { float: right; font-size: smaller; }
@media (max-width: 800px) { .site-nav { position: static; width: auto; } .site-main { margin-left: 0; } }
"""


def sidebar(pages, current, up):
    "The site's navigation: home, then a list per layer, as HTML; `up` is the path from the page back to the site root."
    out, group = [], None
    for p in pages:
        if p.src.stem == "index": continue
        g = layer_of(p.src)
        if g != group:
            if group is not None: out.append("</ul>")
            out.append(f"<h2>{html.escape(g)}</h2><ul>")
            group = g
        n = _re_num.match(p.src.stem)
        num = f'<span class="num">{n.group(1)}{n.group(2)}</span>' if n else ""
        cls = ' class="current"' if p is current else ""
        out.append(f'<li><a{cls} href="{up}{p.out}">{num}{html.escape(str(p.title))}</a></li>')
    if group is not None: out.append("</ul>")
    return "\n".join(out)


class Page:
    def __init__(self, src, out, title, description="", kind="notebook"):
        self.src, self.out, self.title, self.description, self.kind = src, out, title, description, kind


def exporter():
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    return HTMLExporter(template_name="lab", template_file="site_page.html.j2", exclude_input_prompt=True,
                        exclude_output_prompt=True, extra_loaders=[DictLoader({"site_page.html.j2": PAGE})])


def _md_inline(s):
    "A description line as HTML: code spans and emphasis, everything else escaped."
    s = html.escape(str(s), quote=False)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"(?<![\w*])\*([^*]+)\*(?![\w*])", r"<em>\1</em>", s)


# ------------------------------------------------------------------------------------------------------- the links
_re_attr = re.compile(r'''(\s(?:href|src)=)(["'])(.*?)\2''', re.S)
_re_scheme = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


class Site:
    def __init__(self, out, pages, cfg, nbs=NBS):
        self.out, self.pages, self.cfg = out, pages, cfg
        self.by_src = {p.src.resolve(): p for p in pages}
        self.reports = []                  # markdown files that pages link to, rendered as pages too
        self.copied, self.broken = set(), []
        self.site_files = {p.out for p in pages}
        host = (cfg.get("doc_host", "") + cfg.get("doc_baseurl", "")).rstrip("/")
        self.doc_prefix = host + "/" if host else None
        # nbdev's doc links name pages without the number prefix (solvers.html): the numbered notebook wins a clash.
        self.nbdev_names = {}
        from nbdev.doclinks import _nbpath2html
        for p in sorted((p for p in pages if p.kind == "notebook"), key=lambda p: number(p.src) is None, reverse=True):
            self.nbdev_names[_nbpath2html(p.src.relative_to(nbs)).as_posix()] = p

    def target(self, src_dir, link):
        "The repository file a relative link points to: from the linking file's folder, else from the repository root."
        for base in (src_dir, ROOT):
            t = (base / link).resolve()
            if t.exists() and (t == ROOT or ROOT in t.parents): return t
        return None

    def rewrite(self, page, text):
        "Every href/src of a rendered page, made to point into the site; files linked to are copied or rendered."
        here = (self.out / page.out).parent

        def one(m):
            pre, q, url = m.groups()
            new = self.resolve(page, here, html.unescape(url))
            return f"{pre}{q}{html.escape(new, quote=True) if new != html.unescape(url) else url}{q}"
        return _re_attr.sub(one, text)

    def resolve(self, page, here, url):
        if not url or url.startswith(("#", "data:", "mailto:", "javascript:")): return url
        if self.doc_prefix and url.startswith(self.doc_prefix):          # nbdev's backtick links to its own site
            name, _, frag = url[len(self.doc_prefix):].partition("#")
            p = self.nbdev_names.get(name)
            if p is None: return url
            return os.path.relpath(self.out / p.out, here).replace(os.sep, "/") + (f"#{frag}" if frag else "")
        if _re_scheme.match(url) or url.startswith("//"):
            return url[:-len("#LNone")] if url.endswith("#LNone") else url   # show_doc's source link, no line known
        path, _, frag = url.partition("#")
        path = path.split("?")[0]
        if not path: return url
        own = os.path.relpath((here / unquote(path)).resolve(), self.out).replace(os.sep, "/")
        if own in self.site_files or own.startswith(("static/", "mathjax/")): return url   # the site's own files
        t = self.target(page.src.parent, unquote(path))
        if t is None:
            self.broken.append(f"{page.src.relative_to(ROOT)}: {url}")
            return url
        dest = self.place(t)
        return os.path.relpath(dest, here).replace(os.sep, "/") + (f"#{frag}" if frag else "")

    def place(self, t):
        "Where a linked repository file lives in the site (notebook pages, rendered reports, copied files)."
        if t in self.by_src: return self.out / self.by_src[t].out
        rel = t.relative_to(ROOT)
        if t.is_dir():
            readme = t / "README.md"
            if readme.exists(): return self.place(readme)
            self.broken.append(f"{rel}/: a folder without a README.md to show")
            return self.out / rel
        if t.suffix == ".md":
            p = Page(t, rel.with_suffix(".html").as_posix(), _md_title(t), kind="report")
            self.by_src[t] = p
            self.reports.append(p)
            self.site_files.add(p.out)
            return self.out / p.out
        dest = self.out / rel
        if t not in self.copied:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(t, dest)
            self.copied.add(t)
        return dest


def _md_title(path):
    m = re.search(r"^#\s+(.+?)\s*$", path.read_text(errors="replace"), re.M)
    return m.group(1) if m else path.name


# ------------------------------------------------------------------------------------------------------------ build
def copy_assets(out):
    "nbconvert's notebook CSS, the site's CSS, and MathJax 2 (TeX in, HTML-CSS out with the STIX web fonts)."
    import nbconvert, jupyter_core.paths
    static = out / "static"
    static.mkdir(parents=True, exist_ok=True)
    lab = next((Path(d) / "nbconvert" / "templates" / "lab" / "static" for d in jupyter_core.paths.jupyter_path()
                if (Path(d) / "nbconvert" / "templates" / "lab" / "static" / "index.css").exists()), None)
    if lab is None: sys.exit(f"nbconvert {nbconvert.__version__}: its lab template's CSS was not found")
    for css in ("index.css", "theme-light.css"): shutil.copy2(lab / css, static / css)
    (static / "site.css").write_text(SITE_CSS)
    try: import jupyter_server_mathjax
    except ImportError: sys.exit("MathJax is missing: pip install jupyter-server-mathjax (a dev requirement)")
    mj = Path(jupyter_server_mathjax.__file__).parent / "static"
    dst = out / "mathjax"
    if dst.exists(): shutil.rmtree(dst)
    for part in ("MathJax.js", "LICENSE", "config", "extensions", "jax", "fonts"):
        s, d = mj / part, dst / part
        d.parent.mkdir(parents=True, exist_ok=True)
        if s.is_dir(): shutil.copytree(s, d)
        elif s.exists(): shutil.copy2(s, d)


def build(out, nbs=NBS, quiet=False):
    "Render every notebook in `nbs` (and the markdown reports they link to) into `out`; returns the broken links."
    t0, cwd = time.time(), os.getcwd()
    os.chdir(ROOT)                     # nbdev reads settings.ini from the working directory
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))   # this checkout's library, not an installed one
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    try:
        cfg = _nbdev().get_config()
        out, nbs = Path(out).resolve(), Path(nbs).resolve()
        out.mkdir(parents=True, exist_ok=True)
        copy_assets(out)
        pages = []
        for src in notebooks(nbs):
            fm = front_matter(src)
            pages.append(Page(src, src.relative_to(nbs).with_suffix(".html").as_posix(),
                              fm.get("title", src.stem), fm.get("description", "")))
        site, exp, procs = Site(out, pages, cfg, nbs), exporter(), doc_processors(cfg.lib_name)
        say(f"building {len(pages)} notebooks from {nbs} into {out}")
        todo, i = list(pages), 0
        with local_doclinks(cfg.lib_name), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            while todo:
                page, i, t = todo.pop(0), i + 1, time.time()
                before = len(site.reports)
                render(page, site, exp, procs, cfg)
                todo += site.reports[before:]
                say(f"[{i:2d}/{len(pages) + len(site.reports)}] {page.src.relative_to(ROOT)} -> {page.out}"
                    f"  ({time.time() - t:.1f} s)")
    finally: os.chdir(cwd)
    for b in site.broken: say(f"broken link: {b}")
    say(f"built {i} pages in {time.time() - t0:.1f} s: open {out / 'index.html'}")
    return site.broken


def render(page, site, exp, procs, cfg):
    "One page: a notebook through nbdev's processors, or a markdown report as a one-cell notebook; then to HTML."
    import nbformat
    if page.kind == "notebook": nb, _ = process(page.src, procs)
    else:
        nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
            {"id": "report", "cell_type": "markdown", "metadata": {}, "source": _strip_h1(page.src.read_text())}]}
    out = site.out
    up = os.path.relpath(out, (out / page.out).parent).replace(os.sep, "/") + "/"
    up = "" if up == "./" else up
    body, _ = exp.from_notebook_node(nbformat.reads(json.dumps(nb), as_version=4), resources={"site": {
        "name": cfg.get("title", cfg.lib_name), "title": page.title, "description": page.description,
        "description_html": _md_inline(page.description), "up": up,
        "source": str(page.src.relative_to(ROOT)), "sidebar": sidebar(site.pages, page, up)}})
    dest = out / page.out
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(site.rewrite(page, body))


def _strip_h1(md):
    "A report's text without its first `# ` heading (the page header shows it)."
    return re.sub(r"\A\s*#\s+.+\n", "", md, count=1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "_docs"), help="output folder (default: _docs/ in the repository)")
    ap.add_argument("--strict", action="store_true", help="exit with status 1 if a link points to no file")
    a = ap.parse_args(argv)
    broken = build(a.out)
    if broken and a.strict: sys.exit(f"{len(broken)} broken links")


if __name__ == "__main__":
    main()
