#!/usr/bin/env python3
"""Regenerates grains.golden from grains_docs.json.

subdict_match and traverse_dict_and_list below are transcribed from Salt
(salt/utils/data.py, 3006.x), without logging and with the YAML fallback for
non-string dict keys dropped (JSON grains only have string keys). The golden
file records what Salt's grain (-G) and grain_pcre (-P) matchers answer for
each minion document and expression. Run:
    python3 gen_grains.py > grains.golden
"""
import fnmatch, json, re

DEFAULT_TARGET_DELIM = ":"


def traverse_dict_and_list(data, key, default=None, delimiter=DEFAULT_TARGET_DELIM):
    ptr = data
    if isinstance(key, str):
        key = key.split(delimiter)
    for each in key:
        if isinstance(ptr, list):
            try:
                idx = int(each)
            except ValueError:
                embed_match = False
                for embedded in (x for x in ptr if isinstance(x, dict)):
                    try:
                        ptr = embedded[each]
                        embed_match = True
                        break
                    except KeyError:
                        pass
                if not embed_match:
                    return default
            else:
                embed_match = False
                for embedded in (x for x in ptr if isinstance(x, dict)):
                    try:
                        ptr = embedded[idx]
                        embed_match = True
                        break
                    except KeyError:
                        pass
                if not embed_match:
                    try:
                        ptr = ptr[idx]
                    except IndexError:
                        return default
        else:
            try:
                ptr = ptr[each]
            except (KeyError, TypeError):
                return default
    return ptr


def subdict_match(data, expr, delimiter=DEFAULT_TARGET_DELIM, regex_match=False, exact_match=False):
    def _match(target, pattern, regex_match=False, exact_match=False):
        if isinstance(target, (dict, list)):
            # brine: containers never equal a pattern (Salt would compare
            # their Python repr).
            return False
        target = str(target).lower()
        pattern = str(pattern).lower()
        if regex_match:
            try:
                return re.match(pattern, target)
            except Exception:
                return False
        else:
            return target == pattern if exact_match else fnmatch.fnmatch(target, pattern)

    def _dict_match(target, pattern, regex_match=False, exact_match=False):
        ret = False
        wildcard = pattern.startswith("*:")
        if wildcard:
            pattern = pattern[2:]
        if pattern == "*":
            ret = True
        if not ret and pattern in target:
            ret = True
        if not ret and subdict_match(target, pattern, delimiter=delimiter, regex_match=regex_match, exact_match=exact_match):
            ret = True
        if not ret and wildcard:
            for key in target:
                if isinstance(target[key], dict):
                    if _dict_match(target[key], pattern, regex_match=regex_match, exact_match=exact_match):
                        return True
                elif isinstance(target[key], list):
                    for item in target[key]:
                        if _match(item, pattern, regex_match=regex_match, exact_match=exact_match):
                            return True
                elif _match(target[key], pattern, regex_match=regex_match, exact_match=exact_match):
                    return True
        return ret

    splits = expr.split(delimiter)
    num_splits = len(splits)
    if num_splits == 1:
        return False
    for idx in range(num_splits - 1, 0, -1):
        key = delimiter.join(splits[:idx])
        if key == "*":
            matchstr = expr
            match = data
        else:
            matchstr = delimiter.join(splits[idx:])
            match = traverse_dict_and_list(data, key, {}, delimiter=delimiter)
        if match == {}:
            continue
        if isinstance(match, dict):
            if _dict_match(match, matchstr, regex_match=regex_match, exact_match=exact_match):
                return True
            continue
        if isinstance(match, (list, tuple)):
            for member in match:
                if isinstance(member, dict):
                    if _dict_match(member, matchstr, regex_match=regex_match, exact_match=exact_match):
                        return True
                if _match(member, matchstr, regex_match=regex_match, exact_match=exact_match):
                    return True
            continue
        if _match(match, matchstr, regex_match=regex_match, exact_match=exact_match):
            return True
    return False


GLOB = [
    "os:Debian", "os:debian", "os:deb*", "os:Ubuntu", "os_family:Red*", "roles:web", "roles:WEB",
    "roles:db", "roles:*", "roles:mongodb_server", "num_cpus:4", "num_cpus:[2-4]", "virtual:true",
    "virtual:True", "missing:None", "missing:none", "ip_interfaces:eth0", "ip_interfaces:eth0:198.18.0.5",
    "ip_interfaces:eth0:198.18.0.*", "ip_interfaces:lo:127.0.0.1", "ip_interfaces:ETH0",
    "ipv6:fe80::1", "ipv6:FE80::1", "ipv6:fe80::*", "ipv6:::1", "url:http://x.example/a",
    "disks:name:sda", "disks:name:sdb", "disks:size:100", "disks:0:name:sda", "disks:1:name:sdb",
    "roles:0:web", "roles:-1:db", "roles:5:web", "*:debian", "*:web", "*:198.18.0.5",
    "selinux:enabled:false", "selinux:enabled", "selinux:mode:enforcing", "selinux:*",
    "empty:", "emptystr:", "emptystr:*", "nested:a:b:c", "nested:a:b", "nested:a", "nested:a:b:C",
    "colon:key:value", "colon:key", "a:b", "pct:1.5", "ratio:0.25", "big:12345678901",
    "matrix:x", "matrix:1", "weird key:yes", "os", "roles::web", ":", "nested:*:c",
    "kernelrelease:6.1.0-*", "osrelease:12", "osmajorrelease:12", "tags:prod", "tags:PROD",
]
PCRE = [
    "os:Deb", "os:deb.*n$", "os:^debian$", "os:ian", "roles:w.b", "roles:(web|db)$",
    "ip_interfaces:eth0:198\\.18\\.0\\.\\d+", "ipv6:fe80::", "num_cpus:[0-9]+",
    "disks:name:sd[a-z]", "nested:a:b:c", "*:debian", "virtual:t", "os:.*BIAN",
]


def main():
    with open("grains_docs.json") as f:
        docs = json.load(f)
    for i, doc in enumerate(docs):
        for expr in GLOB:
            print(json.dumps([i, "grain", expr, bool(subdict_match(doc, expr))]))
        for expr in PCRE:
            print(json.dumps([i, "grain_pcre", expr, bool(subdict_match(doc, expr, regex_match=True))]))


main()
