"""Sphinx extension of the course site: nothing on a page may need the network.

jupyter-book always loads sphinx-thebe, whose page scripts point at a CDN (and, with this Sphinx,
declare the same constant twice, a console error). The course has no live-code button, so the
thebe scripts are dropped from every page.
"""


def _drop_thebe(app, pagename, templatename, context, doctree):
    def keep(script) -> bool:
        filename = str(getattr(script, "filename", script) or "")
        body = str(getattr(script, "attributes", {}).get("body", ""))
        return "thebe" not in filename and "THEBE_JS_URL" not in body

    if "script_files" in context:
        context["script_files"] = [s for s in context["script_files"] if keep(s)]


def setup(app):
    app.connect("html-page-context", _drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
