package builtins

import controlStructures "github.com/brine-cm/brine/internal/gonja/builtins/control_structures"

// ControlStructures exports all builtins controlStructures
var ControlStructures = controlStructures.All
