"""The documentation site (scripts/build_docs.py), built into a temporary folder and checked in headless Chromium: the
home page and a library notebook's page show their title, a rendered equation and a loaded picture, and every link
between the site's files points to a file that exists. The browser checks skip when Chromium is absent (CI installs
Debian's `chromium`); the link checks need no browser. The screenshot goes to pytest's temporary folder."""
import html, importlib.util, json, os, re, shutil, subprocess, tempfile
from pathlib import Path
from urllib.parse import unquote
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install "
                                    "chromium), so the site is not checked in a browser")


def _build_docs():
    spec = importlib.util.spec_from_file_location("build_docs", ROOT / "scripts" / "build_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    "The whole site, built once for this module: (output folder, broken links the build reported)."
    out, cwd = tmp_path_factory.mktemp("site"), os.getcwd()
    try: broken = _build_docs().build(out, quiet=True)
    finally: os.chdir(cwd)
    return out, broken


def _title(nb):
    "The notebook's `# title`, read from its JSON (independently of the builder)."
    for c in json.loads(nb.read_text())["cells"]:
        m = c["cell_type"] == "markdown" and re.search(r"^#\s+(\S.*?)\s*$", "".join(c["source"]), re.M)
        if m: return m.group(1)


def _has_math(nb):
    cells = json.loads(nb.read_text())["cells"]
    return any(c["cell_type"] == "markdown" and "$" in "".join(c["source"]) for c in cells)


# ------------------------------------------------------------------------------------------------------- the links
_re_link = re.compile(r'''\s(?:href|src)=(["'])(.*?)\1''', re.S)


def broken_links(root):
    "'page: link' for every relative href/src in the site's HTML files whose file does not exist."
    bad = []
    for page in sorted(Path(root).rglob("*.html")):
        for _, url in _re_link.findall(page.read_text(errors="replace")):
            url = html.unescape(url)
            external = url.startswith("//") or re.match(r"^[a-zA-Z][\w+.-]*:", url)   # http:, data:, mailto: ...
            if not url or url.startswith("#") or external: continue
            path = unquote(url.split("#")[0].split("?")[0])
            if path and not (page.parent / path).exists(): bad.append(f"{page.relative_to(root)}: {url}")
    return bad


def test_every_notebook_has_a_page(site):
    out, _ = site
    for nb in NBS.glob("*.ipynb"):
        if not nb.name.startswith(("_", ".")): assert (out / f"{nb.stem}.html").exists(), nb.name


def test_every_internal_link_resolves(site):
    out, broken = site
    assert not broken, "links the build could not resolve:\n" + "\n".join(broken)
    bad = broken_links(out)
    assert not bad, "links to files that are not in the site:\n" + "\n".join(bad)
    assert len(list(out.rglob("*.html"))) > len(list(NBS.glob("*.ipynb"))) // 2


def test_the_link_check_catches_a_missing_file(tmp_path):
    (tmp_path / "a.html").write_text('<a href="b.html#x">b</a> <img src="pics/c.png"> <a href="https://x.org/y">y</a>')
    (tmp_path / "b.html").write_text('<a href="a.html">a</a>')
    assert broken_links(tmp_path) == ["a.html: pics/c.png"]


# ----------------------------------------------------------------------------------------------------- the browser
PROBE = """
<script>
window.addEventListener("load", function () {
  function report() {
    var h = document.querySelector("h1.page-title");
    var math = Array.prototype.filter.call(document.querySelectorAll("span.MathJax span.math"),
                                           function (e) { return e.getBoundingClientRect().width > 0; });
    var imgs = Array.prototype.map.call(document.querySelectorAll("main img"), function (i) {
      return {src: i.getAttribute("src").slice(0, 80), width: i.naturalWidth}; });
    var pre = document.createElement("pre");
    pre.id = "site-probe";
    pre.textContent = JSON.stringify({title: h ? h.textContent : null, title_shown: !!(h && h.offsetHeight > 0),
      mathjax: !!window.MathJax, math: math.length, images: imgs,
      errors: (document.body.innerText.match(/Math Processing Error/g) || []).length});
    document.body.appendChild(pre);
  }
  if (window.MathJax && MathJax.Hub) MathJax.Hub.Queue(report); else report();
});
</script>
"""


def chromium(*args, timeout=120):
    "Run headless Chromium on its own throw-away profile (root needs --no-sandbox)."
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
           "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=15000", *args]
    try: return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    finally: shutil.rmtree(profile, ignore_errors=True)


def probe(page: Path) -> dict:
    "What Chromium shows of a page once MathJax has run: a copy of the page with a reporting script, its DOM dumped."
    copy = page.with_name(page.stem + ".probe.html")
    copy.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    try:
        r = chromium("--dump-dom", copy.resolve().as_uri())
    finally: copy.unlink()
    m = re.search(r'<pre id="site-probe">(.*?)</pre>', r.stdout, re.S)
    assert m, f"the page's script did not report (Chromium exit {r.returncode}):\n{r.stderr[-2000:]}"
    return json.loads(html.unescape(m.group(1)))


def problems(p: dict, title: str, math: bool) -> list:
    "What is wrong with a probed page that should show `title`, a figure and (if `math`) an equation."
    out = []
    if p["title"] != title or not p["title_shown"]:
        out.append(f"title {p['title']!r} (shown: {p['title_shown']}), not {title!r}")
    if math and not p["mathjax"]: out.append("MathJax did not load")
    if math and p["math"] < 1: out.append("no rendered equation")
    if p["errors"]: out.append(f"{p['errors']} equations failed (Math Processing Error)")
    if not any(i["width"] > 0 for i in p["images"]): out.append(f"no image was drawn: {p['images']}")
    missing = [i for i in p["images"] if not i["width"]]
    if missing: out.append(f"images that did not load: {missing}")
    return out


def _solvers():
    nbs = sorted(NBS.glob("*_solvers.ipynb"))
    assert nbs, "no solvers notebook in nbs/"
    return nbs[0]


@needs_chromium
@pytest.mark.parametrize("which", ["index", "solvers"])
def test_page_in_chromium(site, which):
    out, _ = site
    nb = NBS / "index.ipynb" if which == "index" else _solvers()
    page = out / ("index.html" if which == "index" else f"{nb.stem}.html")
    bad = problems(probe(page), _title(nb), math=which == "solvers" or _has_math(nb))
    assert not bad, f"{page.name} in Chromium: " + "; ".join(bad)


@needs_chromium
def test_the_browser_check_catches_missing_math_and_pictures(site):
    "The same page without its MathJax script and with its pictures pointing nowhere fails both checks."
    out, _ = site
    page = out / f"{_solvers().stem}.html"
    text = re.sub(r'<script src="[^"]*MathJax.js[^"]*"></script>', "", page.read_text())
    text = re.sub(r'(<img[^>]*\ssrc=")[^"]*"', r'\1missing.png"', text)
    broken = page.with_name("broken.html")
    broken.write_text(text)
    try: bad = problems(probe(broken), _title(_solvers()), math=True)
    finally: broken.unlink()
    assert any("MathJax did not load" in b for b in bad) and any("no rendered equation" in b for b in bad), bad
    assert any("no image was drawn" in b for b in bad), bad


@needs_chromium
def test_screenshot(site, tmp_path):
    "A screenshot of the solvers page, for a person to look at (kept in pytest's temporary folder, out of git)."
    out, _ = site
    shot = tmp_path / "solvers.png"
    r = chromium("--window-size=1280,1600", f"--screenshot={shot}",
                 (out / f"{_solvers().stem}.html").as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000, r.stderr[-2000:]
    print(f"screenshot: {shot}")
