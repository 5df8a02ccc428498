package exec

import (
	"context"
	"fmt"
)

func registerMine(r *Registry) {
	r.RegisterBound("mine.get", Doc{
		Summary: "Return the mine data that targeted minions published for fun, as {minion_id: data}. The master answers, applying its mine ACL; the call fails when the minion is not connected.",
		Args: []ArgDoc{
			{Name: "tgt", Type: Str, Required: true, Doc: "target expression"},
			{Name: "fun", Type: StrOrList, Required: true, Doc: "mine function (or alias) name; several (list or comma-separated) key the result by function first"},
			{Name: "tgt_type", Type: Str, Default: "glob", Doc: "how tgt is matched, as in brinectl -C/-G/-L... (glob, pcre, list, grain, grain_pcre, ipcidr, compound)"},
			{Name: "exclude_minion", Type: Bool, Default: false, Doc: "leave this minion's own data out"},
			{Name: "expr_form", Type: Str, KeywordOnly: true, Doc: "old name of tgt_type, still accepted"},
		},
		Returns: "dict",
		Example: "{% for id, addrs in salt['mine.get']('role:web', 'network.ip_addrs', tgt_type='grain').items() %}",
	}, func(ctx context.Context, env *Env, a *Args) (any, error) {
		tt := a.Str("tgt_type")
		if a.IsSet("expr_form") && !a.IsSet("tgt_type") {
			tt = a.Str("expr_form")
		}
		if tt == "" {
			return nil, badArg("mine.get", "tgt_type", "must not be empty")
		}
		if env.Master == nil {
			return nil, fmt.Errorf("mine.get: %w", errNoMaster)
		}
		ret, err := env.Master.Call(ctx, "mine.get", []any{a.Str("tgt"), a.Value("fun")},
			map[string]any{"tgt_type": tt, "exclude_minion": a.Bool("exclude_minion")})
		if err != nil {
			return nil, fmt.Errorf("mine.get %s: %w", a.Str("tgt"), err)
		}
		m, ok := ret.(map[string]any)
		if ret == nil {
			m, ok = map[string]any{}, true
		}
		if !ok {
			return nil, fmt.Errorf("mine.get: master returned %s, expected a dict", describe(ret))
		}
		return m, nil
	})
}
