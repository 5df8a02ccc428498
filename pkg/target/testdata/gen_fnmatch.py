#!/usr/bin/env python3
"""Regenerates fnmatch.golden: what CPython's fnmatch.fnmatchcase says for
every (pattern, name) pair below. Salt's glob matcher is fnmatch.fnmatch,
which on POSIX is fnmatchcase. Run: python3 gen_fnmatch.py > fnmatch.golden
"""
import fnmatch, json, sys

patterns = [
    "*", "web*", "web-0?", "*-01", "w*b*1", "web-[0-9]*", "web-[!0-9]*", "[]]", "[!]]",
    "[!]", "[", "web[", "[a-]", "[-a]", "[!-a]", "[z-a]", "[!z-a]", "[z-a!x]", "[a-b-c]",
    "[a--b]", "[\\]", "[\\-z]", "[a\\-z]", "[^a]", "[[a]", "[a&&b]", "[a~|]", "*.example.com",
    "db?.*", "**", "*a*a*a*b", "?", "??", "", "a[]]b", "a[!b-d]e", "[ä-ü]x", "é*", "*\n*",
    "web-0[1-3]", "[0-9][0-9]", "a*[b", "[]-a]", "[!]-a]", "x[a-c-e]y", "[a-cx-z]", "[*]", "[?]",
]
names = [
    "web-01", "web-02", "web-0a", "web-x", "db1.example.com", "a", "b", "c", "-", "!", "]",
    "[", "[!]", "x", "^", "&", "~", "|", "\\", "z", "ab", "aab", "aaab", "abab", "a]b", "aee",
    "abe", "é", "éa", "ö", "öx", "a\nb", "", "web[", "12", "1a", "a[b", "axb", "aycx", "*", "?",
    "web-03", "web-04", "y", "e", "web-01.example.com", "**",
]
for p in patterns:
    for n in names:
        print(json.dumps([p, n, fnmatch.fnmatchcase(n, p)], ensure_ascii=False))
