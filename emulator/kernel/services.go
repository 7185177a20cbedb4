package kernel

import (
	"github.com/labctl/labctl/emulator/kubeproxy"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
)

// programRuleset programs a node's kube-proxy rules, over netlink in the
// node's namespace (here, where the applier runs the operation): the
// namespace is new, so kubeproxy writes its tables in a few transactions.
func programRuleset(here string, o plan.ProgramRuleset) error {
	return kubeproxy.Program(netns.Path(here), o.Ruleset)
}
