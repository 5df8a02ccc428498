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
import io
import json
import posixpath
import pprint
import re
import sys
from collections.abc import Hashable

import jinja2
import yaml


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


# Salt's own filters (salt.utils.jinja, salt 3006), copied so that the
# corpus checks them against the code Salt runs.
def format_json(value, sort_keys=True, indent=None):
    return json.dumps(value, sort_keys=sort_keys, indent=indent).strip()


def format_yaml(value, flow_style=True):
    out = yaml.safe_dump(value, default_flow_style=flow_style).strip()
    if out.endswith("\n..."):
        out = out[: len(out) - 4]
    return out


def format_python(value):
    return pprint.pformat(value).strip()


def unique(values):
    if isinstance(values, Hashable):
        return set(values)
    ret = []
    for value in values:
        if value not in ret:
            ret.append(value)
    return ret


def _flags(ignorecase, multiline):
    flag = 0
    if ignorecase:
        flag |= re.I
    if multiline:
        flag |= re.M
    return flag


def regex_replace(txt, rgx, val, ignorecase=False, multiline=False):
    return re.compile(rgx, _flags(ignorecase, multiline)).sub(val, txt)


def regex_search(txt, rgx, ignorecase=False, multiline=False):
    obj = re.search(rgx, txt, _flags(ignorecase, multiline))
    if not obj:
        return None
    return obj.groups()


def regex_match(txt, rgx, ignorecase=False, multiline=False):
    obj = re.match(rgx, txt, _flags(ignorecase, multiline))
    if not obj:
        return None
    return obj.groups()


def to_bool(val):
    if val is None:
        return False
    if isinstance(val, bool):
        return val
    if isinstance(val, str):
        return val.lower() in ("yes", "1", "true")
    if isinstance(val, int):
        return val > 0
    if not isinstance(val, Hashable):
        return len(val) > 0
    return False


def ensure_sequence(data):
    if isinstance(data, (str, tuple, set, dict)):
        return [data]
    return data


def yaml_dquote(text):
    with io.StringIO() as ostream:
        yemitter = yaml.emitter.Emitter(ostream, width=sys.maxsize)
        yemitter.write_double_quoted(str(text))
        return ostream.getvalue()


def yaml_squote(text):
    with io.StringIO() as ostream:
        yemitter = yaml.emitter.Emitter(ostream, width=sys.maxsize)
        yemitter.write_single_quoted(str(text))
        return ostream.getvalue()


def yaml_encode(data):
    yrepr = yaml.representer.SafeRepresenter()
    ynode = yrepr.represent_data(data)
    if not isinstance(ynode, yaml.ScalarNode):
        raise TypeError("yaml_encode() only works with YAML scalar data; failed for {}".format(type(data)))
    tag = ynode.tag.rsplit(":", 1)[-1]
    ret = ynode.value
    if tag == "str":
        ret = yaml_dquote(ynode.value)
    return ret


def load_json(value):
    return json.loads(value)


def load_yaml(value):
    # salt.utils.yaml.safe_load; the corpus avoids what Salt's loader
    # reads differently from PyYAML (leading-zero integers, timestamps).
    return yaml.safe_load(value)


SALT_FILTERS = {
    "load_json": load_json, "load_yaml": load_yaml,
    "json": format_json, "yaml": format_yaml, "python": format_python,
    "unique": unique, "regex_replace": regex_replace, "regex_search": regex_search,
    "regex_match": regex_match, "to_bool": to_bool, "sequence": ensure_sequence,
    "yaml_dquote": yaml_dquote, "yaml_squote": yaml_squote, "yaml_encode": yaml_encode,
}


def test_match(txt, rgx, ignorecase=False, multiline=False):
    return True if re.compile(rgx, _flags(ignorecase, multiline)).match(txt) else False


def test_equalto(value, other):
    return value == other


SALT_TESTS = {"match": test_match, "equalto": test_equalto}


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
        env.filters.update(SALT_FILTERS)
        env.tests.update(SALT_TESTS)
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
