package metrics

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// apiNames is the fixed set of api label values: every Kafka API kmsg knows.
var apiNames = func() map[string]bool {
	names := make(map[string]bool, kmsg.MaxKey+1)
	for k := int16(0); k <= kmsg.MaxKey; k++ {
		if n := kmsg.NameForKey(k); n != "" && n != "Unknown" {
			names[n] = true
		}
	}
	return names
}()

const unknownLabel = "unknown"

func apiLabel(api string) string {
	if apiNames[api] {
		return api
	}
	return unknownLabel
}

// codeLabel keeps "none" and anything shaped like a Kafka error code name.
func codeLabel(code string) string {
	if code == "none" {
		return code
	}
	if code == "" || len(code) > 64 {
		return unknownLabel
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		if !(c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return unknownLabel
		}
	}
	return code
}

func sprintln(v ...any) string {
	return strings.TrimSuffix(fmt.Sprintln(v...), "\n")
}
