package builtins

import (
	methods "github.com/brine-cm/brine/internal/gonja/builtins/methods"
	"github.com/brine-cm/brine/internal/gonja/exec"
)

// Methods exports all builtins methods.
var Methods exec.Methods = methods.All
