// Package archtest holds no code, only a test of the module's layout: which
// packages may depend on which (DESIGN.md's "Layout and data flow"). Imports
// point down the flow spec -> plan -> kernel -> lab; the packages that work
// inside namespaces (probe, capture, workload) stand on emulator/netns alone,
// so a grader, trace or the TUI can use them without the topology machinery.
package archtest
