package grains

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ParseOSRelease reads an os-release(5) file: KEY=value lines, values
// optionally single- or double-quoted, '#' comments. Every well-formed line
// is returned even when others are malformed; the error names the first
// bad line so a broken vendor file still yields the grains it can.
func ParseOSRelease(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	var firstErr error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, raw, ok := strings.Cut(text, "=")
		if !ok || !validOSReleaseKey(key) {
			if firstErr == nil {
				firstErr = fmt.Errorf("os-release line %d: expected KEY=value, got %q", line, text)
			}
			continue
		}
		val, err := unquoteOSRelease(raw)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("os-release line %d: key %s: %w", line, key, err)
			}
			continue
		}
		out[key] = val
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("os-release: %w", err)
	}
	return out, firstErr
}

func validOSReleaseKey(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		switch {
		case c >= 'A' && c <= 'Z', c == '_':
		case c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// unquoteOSRelease follows the shell-compatible subset the spec allows:
// inside double quotes a backslash escapes $ " \ ` only.
func unquoteOSRelease(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	switch s[0] {
	case '\'':
		if len(s) < 2 || s[len(s)-1] != '\'' {
			return "", errors.New("unterminated single quote")
		}
		inner := s[1 : len(s)-1]
		if strings.Contains(inner, "'") {
			return "", errors.New("stray single quote")
		}
		return inner, nil
	case '"':
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			c := s[i]
			switch c {
			case '\\':
				if i+1 >= len(s) {
					return "", errors.New("dangling backslash")
				}
				n := s[i+1]
				if strings.IndexByte("$\"\\`", n) >= 0 {
					b.WriteByte(n)
				} else {
					b.WriteByte('\\')
					b.WriteByte(n)
				}
				i++
			case '"':
				if i != len(s)-1 {
					return "", errors.New("text after closing double quote")
				}
				return b.String(), nil
			default:
				b.WriteByte(c)
			}
		}
		return "", errors.New("unterminated double quote")
	}
	if strings.ContainsAny(s, " \t\"'\\`$") {
		return "", fmt.Errorf("unquoted value %q contains shell special characters", s)
	}
	return s, nil
}

// osNames maps os-release ID to Salt's `os` grain spelling.
var osNames = map[string]string{
	"debian":              "Debian",
	"ubuntu":              "Ubuntu",
	"raspbian":            "Raspbian",
	"linuxmint":           "Mint",
	"pop":                 "Pop",
	"neon":                "KDE neon",
	"devuan":              "Devuan",
	"rhel":                "RedHat",
	"centos":              "CentOS",
	"fedora":              "Fedora",
	"rocky":               "Rocky",
	"almalinux":           "AlmaLinux",
	"ol":                  "OEL",
	"amzn":                "Amazon",
	"cloudlinux":          "CloudLinux",
	"scientific":          "ScientificLinux",
	"alpine":              "Alpine",
	"arch":                "Arch",
	"archarm":             "Arch ARM",
	"manjaro":             "Manjaro",
	"gentoo":              "Gentoo",
	"sles":                "SUSE",
	"opensuse-leap":       "Leap",
	"opensuse-tumbleweed": "openSUSE Tumbleweed",
	"void":                "Void",
	"nixos":               "NixOS",
}

// osFamilies maps the `os` grain to Salt's `os_family`; an os missing here
// is its own family, as in Salt.
var osFamilies = map[string]string{
	"Ubuntu":              "Debian",
	"Raspbian":            "Debian",
	"Mint":                "Debian",
	"Pop":                 "Debian",
	"KDE neon":            "Debian",
	"Devuan":              "Debian",
	"RedHat":              "RedHat",
	"CentOS":              "RedHat",
	"Fedora":              "RedHat",
	"Rocky":               "RedHat",
	"AlmaLinux":           "RedHat",
	"OEL":                 "RedHat",
	"Amazon":              "RedHat",
	"CloudLinux":          "RedHat",
	"ScientificLinux":     "RedHat",
	"Arch ARM":            "Arch",
	"Manjaro":             "Arch",
	"SUSE":                "Suse",
	"Leap":                "Suse",
	"openSUSE Tumbleweed": "Suse",
}

// debianArch is dpkg's architecture name for a uname machine, which is what
// Salt reports as osarch on Debian-family systems.
var debianArch = map[string]string{
	"x86_64":  "amd64",
	"aarch64": "arm64",
	"armv7l":  "armhf",
	"i686":    "i386",
	"i386":    "i386",
	"ppc64le": "ppc64el",
	"s390x":   "s390x",
	"riscv64": "riscv64",
}

// osGrains turns parsed os-release fields into Salt's os* grains.
// cpuarch (uname machine) is needed only for osarch.
func osGrains(rel map[string]string, cpuarch string) map[string]any {
	g := map[string]any{}
	id := strings.ToLower(rel["ID"])
	osName, known := osNames[id]
	if !known {
		osName = firstWord(rel["NAME"])
		if osName == "" && id != "" {
			osName = strings.ToUpper(id[:1]) + id[1:]
		}
		if osName == "" {
			osName = "Linux"
		}
	}
	family := osName
	if f, ok := osFamilies[osName]; ok {
		family = f
	} else if !known {
		// Derivatives we do not list still say whom they are like.
		for _, like := range strings.Fields(strings.ToLower(rel["ID_LIKE"])) {
			if n, ok := osNames[like]; ok {
				family = n
				if f, ok := osFamilies[n]; ok {
					family = f
				}
				break
			}
		}
	}
	g["os"] = osName
	g["os_family"] = family

	fullname := rel["NAME"]
	fullname = strings.TrimSuffix(fullname, " GNU/Linux")
	if fullname == "" {
		fullname = osName
	}
	g["osfullname"] = fullname

	release := rel["VERSION_ID"]
	g["osrelease"] = release
	info := []any{}
	for _, part := range strings.Split(release, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			break
		}
		info = append(info, n)
	}
	g["osrelease_info"] = info
	if len(info) > 0 {
		g["osmajorrelease"] = info[0]
	}

	codename := rel["VERSION_CODENAME"]
	if codename == "" {
		codename = rel["UBUNTU_CODENAME"]
	}
	if codename == "" {
		// "12 (bookworm)", "22.04.3 LTS (Jammy Jellyfish)"
		if v := rel["VERSION"]; strings.Contains(v, "(") && strings.HasSuffix(v, ")") {
			codename = v[strings.LastIndex(v, "(")+1 : len(v)-1]
		}
	}
	g["oscodename"] = codename

	// Salt's osfinger: os name for a few, full name otherwise; full release
	// for Ubuntu-likes, major version for the rest.
	if release != "" {
		fingerName := fullname
		switch osName {
		case "Debian", "Raspbian", "Devuan":
			fingerName = osName
		}
		fingerRel := release
		if osName != "Ubuntu" && osName != "Pop" && len(info) > 0 {
			fingerRel = strconv.Itoa(info[0].(int))
		}
		g["osfinger"] = fingerName + "-" + fingerRel
	}

	osarch := cpuarch
	if family == "Debian" {
		if a, ok := debianArch[cpuarch]; ok {
			osarch = a
		}
	}
	g["osarch"] = osarch
	return g
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}
