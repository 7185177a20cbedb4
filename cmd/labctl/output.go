package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The -o formats, as kubectl names them: table (for people), wide (table
// with more columns), json and yaml (one document, the same in both), name
// (TYPE/NAME lines for scripts).
const (
	outTable = "table"
	outWide  = "wide"
	outJSON  = "json"
	outYAML  = "yaml"
	outName  = "name"
)

var outputFormats = []string{outTable, outWide, outJSON, outYAML, outName}

func checkOutput(format string) error {
	if !slices.Contains(outputFormats, format) {
		return usageErrorf("unknown output format %q (use %s)", format, strings.Join(outputFormats, ", "))
	}
	return nil
}

// writeDoc writes a machine-readable document as JSON or YAML. YAML is made
// from the JSON, so both carry the same fields under the same names, in
// the same order.
func writeDoc(w io.Writer, format string, doc any) error {
	if format == outJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("convert to yaml: %w", err)
	}
	blockStyle(&n)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return err
	}
	return enc.Close()
}

// blockStyle turns JSON's flow style and quoting into YAML's usual block
// style. Every scalar keeps its tag, so a string that would read as
// another type ("10", "true", a timestamp) stays quoted.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}
