#!/usr/bin/env python3
"""Regenerates the golden outputs under render/ with Python's Jinja2,
configured the way Salt configures it (StrictUndefined, the do extension,
Salt's json/yaml/tojson filters, raise(), the trailing-newline fix).

    cd pkg/jinja/testdata && python3 gen.py

The Go tests read only the committed .out files; this script exists so a
reviewer can check they came from real Jinja2.
"""
import copy
import glob
import json
import os

import jinja2
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def sorted_dict(pairs):
    # Go feeds maps to templates in sorted key order; match it.
    return dict(sorted(pairs))


def mine_get(tgt, fun, tgt_type="glob", expr_form=None):
    tgt_type = expr_form or tgt_type
    data = {
        "db1": {"network.ip_addrs": ["10.0.1.1"], "network.get_hostname": "db1.prod"},
        "db2": {"network.ip_addrs": ["10.0.1.2", "10.9.9.2"], "network.get_hostname": "db2.prod"},
        "web1": {"network.ip_addrs": ["10.0.0.11"], "network.get_hostname": "web1.prod"},
    }
    out = {}
    for mid in sorted(data):
        if tgt_type == "glob" and not (tgt == "*" or mid.startswith(tgt.rstrip("*"))):
            continue
        if tgt_type == "grain" and tgt != "env:prod" and not (tgt == "roles:db" and mid.startswith("db")):
            continue
        if fun in data[mid]:
            out[mid] = data[mid][fun]
    return out


def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": dict(sorted(kwargs.items()))}


def salt_raise(msg):
    raise jinja2.exceptions.TemplateError(msg)


def tojson(val, indent=None, **options):
    options.setdefault("ensure_ascii", True)
    if indent is not None:
        options["indent"] = indent
    return (json.dumps(val, **options).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("'", "\\u0027"))


def format_json(value, sort_keys=True, indent=None):
    return json.dumps(value, sort_keys=sort_keys, indent=indent).strip()


def format_yaml(value, flow_style=True):
    out = yaml.safe_dump(value, default_flow_style=flow_style, allow_unicode=True).strip()
    if out.endswith("\n..."):
        out = out[: len(out) - 4]
    return out


def env():
    e = jinja2.Environment(undefined=jinja2.StrictUndefined, extensions=["jinja2.ext.do"])
    e.filters["tojson"] = tojson
    e.filters["json"] = format_json
    e.filters["yaml"] = format_yaml
    e.globals["raise"] = salt_raise
    return e


def main():
    with open(os.path.join(HERE, "vars.json")) as f:
        base = json.load(f, object_pairs_hook=sorted_dict)
    e = env()
    for path in sorted(glob.glob(os.path.join(HERE, "render", "*.j2"))):
        with open(path) as f:
            src = f.read()
        # A fresh copy each time: templates may mutate pillar.
        out = e.from_string(src).render(salt={"mine.get": mine_get, "test.echo": echo}, **copy.deepcopy(base))
        if src.endswith("\n"):
            out += "\n"
        with open(path[:-3] + ".out", "w") as f:
            f.write(out)
        print("wrote", os.path.relpath(path[:-3] + ".out", HERE))


if __name__ == "__main__":
    main()
