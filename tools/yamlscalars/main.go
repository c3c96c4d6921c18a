// yamlscalars prints, for each YAML document on stdin, what kubectl makes of it: sigs.k8s.io/yaml's YAMLToJSON
// (go-yaml v2, YAML 1.1, decoding into an untyped value). One JSON line per document: {"json": <value>} or
// {"error": "<message>"}. Documents are split on "---" lines, as kubectl's YAML reader splits them.
// The unit test tests/unit/test_yaml_scalars.py compares the linter's loader with this output.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, doc := range split(string(in)) {
		var line []byte
		if j, err := yaml.YAMLToJSON([]byte(doc)); err != nil {
			line, _ = json.Marshal(map[string]string{"error": err.Error()})
		} else {
			line, _ = json.Marshal(map[string]json.RawMessage{"json": j})
		}
		out.Write(append(line, '\n'))
	}
}

func split(text string) []string {
	var docs []string
	var cur strings.Builder
	for _, l := range strings.SplitAfter(text, "\n") {
		if strings.HasPrefix(l, "---") && (len(strings.TrimSpace(l)) == 3 || strings.HasPrefix(strings.TrimSpace(l[3:]), "#")) {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(l)
	}
	docs = append(docs, cur.String())
	return docs
}
