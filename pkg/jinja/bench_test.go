package jinja

import (
	"fmt"
	"testing"
)

// BenchmarkRenderHosts renders an /etc/hosts state from a 1,000-minion
// mine, the shape of the hosts.sls example: a loop over mine data with
// string methods, a filter chain and a nested dict built by do.
func BenchmarkRenderHosts(b *testing.B) {
	mine := map[string]any{}
	for i := range 1000 {
		mine[fmt.Sprintf("web%04d", i)] = []any{fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), "127.0.0.1"}
	}
	vars := map[string]any{
		"salt":   map[string]any{"mine.get": Func(func(args []any, kwargs map[string]any) (any, error) { return mine, nil })},
		"grains": map[string]any{"id": "web0001", "domain": "example.com"},
	}
	src := `{%- set peers = {} %}
{%- for id, addrs in salt['mine.get']('web*', 'network.ip_addrs') | dictsort %}
{%-   set ip = addrs | reject('equalto', '127.0.0.1') | first %}
{%-   do peers.update({id: ip}) %}
{%- endfor %}
hosts-file:
  file.managed:
    - name: /etc/hosts
    - contents: |
        127.0.0.1 localhost
{%- for id, ip in peers.items() %}
        {{ ip }} {{ id }}.{{ grains.domain }} {{ id }}
{%- endfor %}
`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render("hosts.sls", src, vars); err != nil {
			b.Fatal(err)
		}
	}
}
