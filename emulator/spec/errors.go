package spec

import "github.com/labctl/labctl/emulator/yamldoc"

// Problem is one thing wrong with a topology, located in its YAML.
type Problem = yamldoc.Problem

// InvalidError carries every problem found in one topology. The CLI maps it
// to its own exit code so scripts can tell bad input from a runtime failure.
type InvalidError = yamldoc.InvalidError
