#!/usr/bin/env python3
"""The oracle of the differential harness: renders every case with
Python's Jinja2 configured the way Salt configures it, once for the whole
corpus.

stdin:  {"root": dir, "context": {...}, "cases": [{"name", "template",
         "source", "trim_blocks", "lstrip_blocks"}]}
stdout: [{"name", "out", "error"}]  (error is "" on success)

Salt's environment (salt.utils.templates.render_jinja_tmpl): extensions
do and loopcontrols, StrictUndefined, trim/lstrip_blocks off unless
configured, the context also set as the globals, Salt's tojson, raise(),
and a loader that resolves "./" and "../" against the importing file.
"""
import json
import posixpath
import sys

import jinja2


class SaltLikeEnvironment(jinja2.Environment):
    def join_path(self, template, parent):
        if template.startswith("./") or template.startswith("../"):
            return posixpath.normpath(posixpath.join(posixpath.dirname(parent), template))
        return template


def tojson(val, indent=None, **options):
    # salt.utils.jinja.tojson
    options.setdefault("ensure_ascii", True)
    if indent is not None:
        options["indent"] = indent
    return (
        json.dumps(val, **options)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("'", "\\u0027")
    )


def salt_raise(msg):
    raise jinja2.exceptions.TemplateError(msg)


def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": dict(sorted(kwargs.items()))}


def main():
    req = json.load(sys.stdin)
    sources = {c["template"]: c["source"] for c in req["cases"]}
    loader = jinja2.ChoiceLoader([jinja2.DictLoader(sources), jinja2.FileSystemLoader(req["root"])])
    results = []
    for case in req["cases"]:
        # A fresh environment per case: Salt builds one per render, and a
        # case mutating pillar must not leak into the next.
        env = SaltLikeEnvironment(
            loader=loader,
            undefined=jinja2.StrictUndefined,
            extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
            trim_blocks=case.get("trim_blocks", False),
            lstrip_blocks=case.get("lstrip_blocks", False),
            keep_trailing_newline=False,
        )
        env.filters["tojson"] = tojson
        env.globals["raise"] = salt_raise
        ctx = json.loads(json.dumps(req["context"]))
        ctx["salt"] = {"test.echo": echo}
        # Salt puts the whole context in the globals too, so templates
        # imported without context still see grains and pillar.
        env.globals.update(ctx)
        try:
            out = env.get_template(case["template"]).render(**ctx)
            if case["source"].endswith("\n"):
                out += "\n"  # salt.utils.templates re-adds it
            results.append({"name": case["name"], "out": out, "error": ""})
        except Exception as e:  # noqa: BLE001 - every failure is a result
            results.append({"name": case["name"], "out": "", "error": "%s: %s" % (type(e).__name__, e)})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
